#!/usr/bin/env python3
"""Independent reference for vklora's chat templates: renders each case with jinja2 the way Hugging Face
transformers' apply_chat_template does (sandboxed environment, trim_blocks, lstrip_blocks, loopcontrols, its own
tojson, raise_exception and strftime_now), so tests can compare vklora's C renderings byte for byte.

usage: ref_chat_template.py SPEC.json OUT.json
SPEC: {"cases": [{"template": "...", "bos_token": "...", "eos_token": "...", "now": SECONDS,
                  "messages": [{"role": ..., "content": ...}], "add_generation_prompt": false}, ...]}
OUT:  [{"text": "..."} or {"error": "..."}, ...] in the same order.
Variables not in SPEC (tools, enable_thinking, reasoning_effort, ...) stay undefined.
"""
import json
import sys
from datetime import datetime, timezone

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Raised(Exception):
    pass


def raise_exception(message):
    raise Raised(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    compiled = {}
    out = []
    for case in spec["cases"]:
        src = case["template"]
        if src not in compiled:
            compiled[src] = env.from_string(src)
        now = datetime.fromtimestamp(case["now"], timezone.utc)
        try:
            text = compiled[src].render(
                messages=case["messages"],
                bos_token=case["bos_token"],
                eos_token=case["eos_token"],
                add_generation_prompt=case.get("add_generation_prompt", False),
                strftime_now=lambda fmt, now=now: now.strftime(fmt),
            )
            out.append({"text": text})
        except (Raised, TemplateError) as e:
            out.append({"error": str(e)})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
