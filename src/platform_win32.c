/* The platform layer on Windows (see src/platform.h): the wide-char Win32 API behind UTF-8 paths, Windows errors
 * mapped onto errno, MoveFileExW for the atomic replace, FlushFileBuffers, file mappings, the console's Ctrl-C. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <errno.h>
#include <io.h>
#include <shellapi.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

/* ---- UTF-8 <-> UTF-16 and errors ---- */

/* UTF-8 to a malloc'd UTF-16 string; NULL (errno EINVAL) when it is not valid UTF-8. */
static wchar_t *wide(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0) {
        errno = EINVAL;
        return NULL;
    }
    wchar_t *w = malloc((size_t)n * sizeof(wchar_t));
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
    return w;
}

/* UTF-16 to a malloc'd UTF-8 string. */
static char *narrow(const wchar_t *w) {
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    char *s = malloc(n > 0 ? (size_t)n : 1);
    if (!s) return NULL;
    if (n <= 0) s[0] = 0;
    else WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL);
    return s;
}

/* A path as the wide-char file API takes it. Paths of MAX_PATH (260) characters or more, which the plain API refuses
 * without a long-path manifest and a registry switch, are made absolute (GetFullPathNameW also turns '/' into '\\'
 * and resolves "." and "..") and given the extended-length prefix: \\?\C:\... or \\?\UNC\server\share\...
 * Shorter paths are passed as they are, so relative paths and device names (NUL, CON) keep their meaning. */
static wchar_t *wpath(const char *path) {
    wchar_t *w = wide(path);
    /* CreateDirectoryW's limit is MAX_PATH - 12 (room for an 8.3 name): prefix from there */
    if (!w || wcslen(w) < MAX_PATH - 12 || !wcsncmp(w, L"\\\\?\\", 4) || !wcsncmp(w, L"\\\\.\\", 4)) return w;
    DWORD n = GetFullPathNameW(w, 0, NULL, NULL);
    wchar_t *full = n ? malloc(((size_t)n + 8) * sizeof(wchar_t)) : NULL;
    if (!full || !GetFullPathNameW(w, n, full + 8, NULL)) {
        free(full);
        return w; /* the call with the unprefixed path reports the error */
    }
    free(w);
    const wchar_t *rest = full + 8, *prefix = L"\\\\?\\";
    if (rest[0] == L'\\' && rest[1] == L'\\') { /* \\server\share\... */
        rest += 2;
        prefix = L"\\\\?\\UNC\\";
    }
    size_t pn = wcslen(prefix), rn = wcslen(rest);
    memmove(full + pn, rest, (rn + 1) * sizeof(wchar_t));
    memcpy(full, prefix, pn * sizeof(wchar_t));
    return full;
}

static int errno_of(DWORD e) {
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME: return ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_WRITE_PROTECT:
    case ERROR_PRIVILEGE_NOT_HELD: return EACCES;
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case ERROR_USER_MAPPED_FILE:
    case ERROR_BUSY: return EBUSY;
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS: return EEXIST;
    case ERROR_DIR_NOT_EMPTY: return ENOTEMPTY;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL: return ENOSPC;
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_BUFFER_OVERFLOW: return ENAMETOOLONG;
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_PARAMETER: return EINVAL;
    case ERROR_DIRECTORY: return ENOTDIR;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY: return ENOMEM;
    case ERROR_NOT_SAME_DEVICE: return EXDEV;
    case ERROR_TOO_MANY_OPEN_FILES: return EMFILE;
    default: return EIO;
    }
}

static bool fail_win(void) {
    errno = errno_of(GetLastError());
    return false;
}

static HANDLE handle(vkl_os_file f) { return (HANDLE)f; }

/* ---- files ---- */

FILE *vkl_os_fopen(const char *path, const char *mode) {
    wchar_t *wp = wpath(path), *wm = wide(mode);
    FILE *f = wp && wm ? _wfopen(wp, wm) : NULL;
    free(wp);
    free(wm);
    return f;
}

static bool create(const char *path, DWORD access, DWORD disposition, vkl_os_file *out) {
    wchar_t *w = wpath(path);
    if (!w) return false;
    /* FILE_SHARE_DELETE: a file we hold open may still be renamed over or removed, as on POSIX. */
    HANDLE h = CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, disposition,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    free(w);
    if (h == INVALID_HANDLE_VALUE) return fail_win();
    *out = (vkl_os_file)h;
    return true;
}

bool vkl_os_create_temp(char *tmpl, const char *mode_of, vkl_os_file *out) {
    (void)mode_of; /* no POSIX mode bits: the new file inherits the folder's ACL */
    size_t n = strlen(tmpl);
    if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX")) {
        errno = EINVAL;
        return false;
    }
    static const char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    LARGE_INTEGER c;
    QueryPerformanceCounter(&c);
    uint64_t x = (uint64_t)c.QuadPart ^ ((uint64_t)GetCurrentProcessId() << 32) ^ (uint64_t)(uintptr_t)tmpl;
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int i = 0; i < 6; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            tmpl[n - 6 + i] = digits[(x >> 33) % 62];
        }
        if (create(tmpl, GENERIC_WRITE, CREATE_NEW, out)) return true;
        if (errno != EEXIST) return false;
    }
    errno = EEXIST;
    return false;
}

bool vkl_os_open_append(const char *path, vkl_os_file *out) {
    if (!create(path, GENERIC_WRITE, OPEN_ALWAYS, out)) return false;
    LARGE_INTEGER zero = {0};
    SetFilePointerEx(handle(*out), zero, NULL, FILE_END);
    return true;
}

int64_t vkl_os_write(vkl_os_file f, const void *p, size_t n) {
    /* O_APPEND semantics: every write goes to the current end */
    LARGE_INTEGER zero = {0};
    SetFilePointerEx(handle(f), zero, NULL, FILE_END);
    DWORD done = 0;
    if (!WriteFile(handle(f), p, (DWORD)(n < (1u << 30) ? n : (1u << 30)), &done, NULL)) {
        fail_win();
        return -1;
    }
    return (int64_t)done;
}

bool vkl_os_write_all(vkl_os_file f, const void *p, uint64_t n) {
    const uint8_t *c = p;
    while (n > 0) {
        DWORD done = 0;
        if (!WriteFile(handle(f), c, (DWORD)(n < (1u << 30) ? n : (1u << 30)), &done, NULL)) return fail_win();
        if (done == 0) {
            errno = EIO;
            return false;
        }
        c += done;
        n -= done;
    }
    return true;
}

int64_t vkl_os_file_size(vkl_os_file f) {
    LARGE_INTEGER s;
    if (!GetFileSizeEx(handle(f), &s)) {
        fail_win();
        return -1;
    }
    return s.QuadPart;
}

bool vkl_os_truncate(vkl_os_file f, int64_t size) {
    LARGE_INTEGER at;
    at.QuadPart = size;
    if (!SetFilePointerEx(handle(f), at, NULL, FILE_BEGIN) || !SetEndOfFile(handle(f))) return fail_win();
    return true;
}

bool vkl_os_sync(vkl_os_file f) { return FlushFileBuffers(handle(f)) ? true : fail_win(); }

bool vkl_os_close(vkl_os_file f) { return CloseHandle(handle(f)) ? true : fail_win(); }

bool vkl_os_replace(const char *from, const char *to) {
    wchar_t *wf = wpath(from), *wt = wpath(to);
    bool ok = wf && wt;
    if (ok) {
        /* A virus scanner or indexer briefly holding the target open makes the replace fail with a sharing
         * violation: retry for up to ~1 s before giving up. */
        for (int attempt = 0;; attempt++) {
            if (MoveFileExW(wf, wt, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) break;
            DWORD e = GetLastError();
            if (attempt < 20 && (e == ERROR_ACCESS_DENIED || e == ERROR_SHARING_VIOLATION)) {
                Sleep(50);
                continue;
            }
            ok = fail_win();
            break;
        }
    }
    free(wf);
    free(wt);
    return ok;
}

void vkl_os_sync_dir(const char *dir) { (void)dir; /* MOVEFILE_WRITE_THROUGH made the rename durable */ }

bool vkl_os_remove(const char *path) {
    wchar_t *w = wpath(path);
    bool ok = w && (DeleteFileW(w) ? true : fail_win());
    free(w);
    return ok;
}

vkl_path_kind vkl_os_path_kind(const char *path) {
    wchar_t *w = wpath(path);
    if (!w) return VKL_PATH_NONE;
    DWORD a = GetFileAttributesW(w);
    free(w);
    if (a == INVALID_FILE_ATTRIBUTES) {
        fail_win();
        return VKL_PATH_NONE;
    }
    if (a & FILE_ATTRIBUTE_DIRECTORY) return VKL_PATH_DIR;
    if (a & FILE_ATTRIBUTE_DEVICE) return VKL_PATH_OTHER;
    return VKL_PATH_FILE;
}

bool vkl_os_mkdir(const char *path) {
    wchar_t *w = wpath(path);
    if (!w) return false;
    bool ok = CreateDirectoryW(w, NULL);
    if (!ok) {
        fail_win();
        /* "C:" or "\\server\share" cannot be created but exist: report them as existing, as mkdir -p needs */
        DWORD a = GetFileAttributesW(w);
        if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY)) errno = EEXIST;
    }
    free(w);
    return ok;
}

bool vkl_os_rmdir(const char *path) {
    wchar_t *w = wpath(path);
    bool ok = w && (RemoveDirectoryW(w) ? true : fail_win());
    free(w);
    return ok;
}

bool vkl_os_is_sep(char c) { return c == '/' || c == '\\'; }

struct vkl_os_dir {
    HANDLE h;
    bool first, done;
    WIN32_FIND_DATAW fd;
    char *name;
};

vkl_os_dir *vkl_os_opendir(const char *path) {
    size_t n = strlen(path);
    char *pattern = malloc(n + 3);
    if (!pattern) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(pattern, path, n);
    size_t at = n;
    if (n && !vkl_os_is_sep(path[n - 1])) pattern[at++] = '\\';
    pattern[at++] = '*';
    pattern[at] = 0;
    wchar_t *w = wpath(pattern);
    free(pattern);
    if (!w) return NULL;
    vkl_os_dir *d = calloc(1, sizeof(*d));
    if (!d) {
        free(w);
        errno = ENOMEM;
        return NULL;
    }
    d->h = FindFirstFileW(w, &d->fd);
    free(w);
    if (d->h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        free(d);
        /* "path\*" on a file fails with ERROR_DIRECTORY or ERROR_PATH_NOT_FOUND, as opendir gives ENOTDIR */
        errno = e == ERROR_FILE_NOT_FOUND ? ENOENT : errno_of(e);
        return NULL;
    }
    d->first = true;
    return d;
}

const char *vkl_os_readdir(vkl_os_dir *d) {
    for (;;) {
        if (d->done) return NULL;
        if (!d->first && !FindNextFileW(d->h, &d->fd)) {
            d->done = true;
            return NULL;
        }
        d->first = false;
        if (!wcscmp(d->fd.cFileName, L".") || !wcscmp(d->fd.cFileName, L"..")) continue;
        free(d->name);
        d->name = narrow(d->fd.cFileName);
        if (d->name) return d->name;
    }
}

void vkl_os_closedir(vkl_os_dir *d) {
    if (!d) return;
    FindClose(d->h);
    free(d->name);
    free(d);
}

bool vkl_os_map(const char *path, const void **data, uint64_t *size, const char **failed) {
    *data = NULL;
    *size = 0;
    wchar_t *w = wpath(path);
    if (!w) {
        *failed = "open";
        return false;
    }
    DWORD a = GetFileAttributesW(w);
    if (a != INVALID_FILE_ATTRIBUTES && (a & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE))) {
        free(w);
        *failed = "type";
        errno = 0;
        return false;
    }
    /* FILE_SHARE_DELETE: a mapped input may be renamed over by another writer as on POSIX */
    HANDLE h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    free(w);
    if (h == INVALID_HANDLE_VALUE) {
        *failed = "open";
        return fail_win();
    }
    LARGE_INTEGER s;
    if (!GetFileSizeEx(h, &s)) {
        *failed = "stat";
        fail_win();
        CloseHandle(h);
        return false;
    }
    if (GetFileType(h) != FILE_TYPE_DISK) {
        CloseHandle(h);
        *failed = "type";
        errno = 0;
        return false;
    }
    if (s.QuadPart > 0) { /* a zero-length mapping is refused: the parsers report an empty file */
        HANDLE m = CreateFileMappingW(h, NULL, PAGE_READONLY, 0, 0, NULL);
        const void *p = m ? MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0) : NULL;
        if (!p) {
            *failed = "map";
            *size = (uint64_t)s.QuadPart;
            fail_win();
            int e = errno;
            if (m) CloseHandle(m);
            CloseHandle(h);
            errno = e;
            return false;
        }
        CloseHandle(m); /* the view keeps the mapping and the file */
        *data = p;
        *size = (uint64_t)s.QuadPart;
    }
    CloseHandle(h);
    return true;
}

void vkl_os_unmap(const void *data, uint64_t size) {
    (void)size;
    if (data) UnmapViewOfFile(data);
}

/* ---- time, processors, consoles ---- */

double vkl_os_now_s(void) {
    static LARGE_INTEGER freq;
    if (!freq.QuadPart) QueryPerformanceFrequency(&freq);
    LARGE_INTEGER c;
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)freq.QuadPart;
}

void vkl_os_time_utc(time_t t, struct tm *out) {
    if (gmtime_s(out, &t)) memset(out, 0, sizeof(*out));
}

void vkl_os_time_local(time_t t, struct tm *out) {
    if (localtime_s(out, &t)) memset(out, 0, sizeof(*out));
}

int vkl_os_cpu_count(void) {
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    return n > 0 ? (int)n : 1;
}

bool vkl_os_isatty(FILE *f) { return _isatty(_fileno(f)) != 0; }

int64_t vkl_os_getline(char **line, size_t *cap, FILE *f) {
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        if (n + 2 > *cap || !*line) {
            size_t nc = *cap < 128 ? 128 : *cap * 2;
            char *p = realloc(*line, nc);
            if (!p) {
                errno = ENOMEM;
                return -1;
            }
            *line = p;
            *cap = nc;
        }
        (*line)[n++] = (char)c;
        if (c == '\n') break;
    }
    if (n == 0) return -1;
    (*line)[n] = 0;
    return (int64_t)n;
}

void *vkl_os_memmem(const void *haystack, size_t hn, const void *needle, size_t nn) {
    const uint8_t *h = haystack;
    if (nn == 0) return (void *)h;
    for (size_t i = 0; nn <= hn && i <= hn - nn; i++)
        if (h[i] == *(const uint8_t *)needle && !memcmp(h + i, needle, nn)) return (void *)(h + i);
    return NULL;
}

typedef struct {
    int (*cmp)(const void *, const void *, void *);
    void *ctx;
} sort_thunk;

/* the C runtime's qsort_s passes the context first */
static int sort_cmp(void *thunk, const void *a, const void *b) {
    const sort_thunk *t = thunk;
    return t->cmp(a, b, t->ctx);
}

void vkl_os_qsort_r(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *, void *), void *ctx) {
    sort_thunk t = {cmp, ctx};
    qsort_s(base, n, size, sort_cmp, &t);
}

/* Console control events arrive on a thread of their own: the handler only sets the flag the training loop polls
 * at every step (as the SIGINT handler does on POSIX); a second event falls through to the default handler, which
 * ends the process. */
static volatile sig_atomic_t *volatile interrupt_flag;
static volatile LONG interrupt_seen;

static BOOL WINAPI on_console_event(DWORD ev) {
    if (ev != CTRL_C_EVENT && ev != CTRL_BREAK_EVENT) return FALSE;
    volatile sig_atomic_t *flag = interrupt_flag;
    if (!flag || InterlockedExchange(&interrupt_seen, 1)) return FALSE;
    *flag = 1;
    return TRUE;
}

void vkl_os_on_interrupt(volatile sig_atomic_t *flag) {
    static bool installed;
    interrupt_flag = flag;
    InterlockedExchange(&interrupt_seen, 0);
    if (flag && !installed) installed = SetConsoleCtrlHandler(on_console_event, TRUE);
    else if (!flag && installed) installed = !SetConsoleCtrlHandler(on_console_event, FALSE);
}

void vkl_os_kill_self(void) { TerminateProcess(GetCurrentProcess(), 137); }

void vkl_os_init_args(int *argc, char ***argv) {
    int n = 0;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &n);
    if (wargv && n > 0) {
        char **a = calloc((size_t)n + 1, sizeof(char *));
        bool ok = a != NULL;
        for (int i = 0; ok && i < n; i++) ok = (a[i] = narrow(wargv[i])) != NULL;
        if (ok) {
            *argc = n;
            *argv = a; /* kept for the life of the process */
        }
    }
    if (wargv) LocalFree(wargv);
    /* Text on the console is UTF-8 (tokens, paths, generated text) */
    SetConsoleOutputCP(CP_UTF8);
    SetConsoleCP(CP_UTF8);
}
