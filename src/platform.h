/* The platform layer: every call into the operating system (files, directories, mapping, atomic replace, durability,
 * Ctrl-C, clocks, processes, UTF-8 arguments) goes through here; src/platform_posix.c and src/platform_win32.c. */
#ifndef VKLORA_PLATFORM_H
#define VKLORA_PLATFORM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Conventions: paths are UTF-8 (on Windows converted to UTF-16 for the wide-char API; '/' and '\' both separate).
 * Functions returning bool set errno on failure (Windows errors are mapped onto the nearest errno: ENOENT, EACCES,
 * EEXIST, ENOSPC, EBUSY, ENAMETOOLONG, ...), so callers report them with strerror(errno) on every OS. */

/* An open file: a file descriptor on POSIX, a HANDLE on Windows. */
typedef intptr_t vkl_os_file;
#define VKL_OS_NO_FILE ((vkl_os_file)-1)

/* fopen with a UTF-8 path (binary modes only: "rb", "wb", "ab"). */
FILE *vkl_os_fopen(const char *path, const char *mode);

/* Create and open `tmpl` (ending in "XXXXXX", replaced in place) exclusively for writing. The new file gets the
 * permission bits of `mode_of` when that exists, else 0644 (POSIX; Windows has no mode bits). */
bool vkl_os_create_temp(char *tmpl, const char *mode_of, vkl_os_file *out);
/* Open for appending, creating it (0644) when missing. */
bool vkl_os_open_append(const char *path, vkl_os_file *out);
/* One write of up to n bytes at the end of a file opened by vkl_os_open_append: the count written, or -1 (errno
 * set; EINTR possible on POSIX). */
int64_t vkl_os_write(vkl_os_file f, const void *p, size_t n);
/* All n bytes (retrying short writes and EINTR); false with errno set (EIO for a zero-byte write). */
bool vkl_os_write_all(vkl_os_file f, const void *p, uint64_t n);
/* Current size (the end-of-file offset), -1 on failure. */
int64_t vkl_os_file_size(vkl_os_file f);
bool vkl_os_truncate(vkl_os_file f, int64_t size);
/* fsync / FlushFileBuffers: the data is on disk when this returns true. */
bool vkl_os_sync(vkl_os_file f);
bool vkl_os_close(vkl_os_file f);

/* Replace `to` by `from` atomically (rename; MoveFileExW with MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH).
 * Works for directories when `to` does not exist. */
bool vkl_os_replace(const char *from, const char *to);
/* Make the renames inside `dir` durable (POSIX: fsync of the directory; Windows: MOVEFILE_WRITE_THROUGH already did). */
void vkl_os_sync_dir(const char *dir);
/* Remove a file (errno ENOENT when it was not there). */
bool vkl_os_remove(const char *path);
/* Create one directory (0755); errno EEXIST when it exists already. */
bool vkl_os_mkdir(const char *path);
bool vkl_os_rmdir(const char *path);
/* Whether c separates path components ('/' everywhere, also '\' on Windows). */
bool vkl_os_is_sep(char c);

typedef enum { VKL_PATH_NONE, VKL_PATH_FILE, VKL_PATH_DIR, VKL_PATH_OTHER } vkl_path_kind;
/* What is at `path` (following links); VKL_PATH_NONE with errno set when nothing can be seen there. */
vkl_path_kind vkl_os_path_kind(const char *path);

/* Directory listing: names without "." and "..", in the order the OS returns them. */
typedef struct vkl_os_dir vkl_os_dir;
vkl_os_dir *vkl_os_opendir(const char *path);
const char *vkl_os_readdir(vkl_os_dir *d); /* NULL at the end; the name lives until the next call */
void vkl_os_closedir(vkl_os_dir *d);

/* A whole file mapped read-only (*data NULL for an empty file). On failure *failed says which step ("open",
 * "stat", "map"; errno set; *size is the file's size after "map") or "type" (not a regular file). */
bool vkl_os_map(const char *path, const void **data, uint64_t *size, const char **failed);
void vkl_os_unmap(const void *data, uint64_t size);

/* Seconds on a monotonic clock. */
double vkl_os_now_s(void);
/* Calendar time broken down, in UTC or the local zone. */
void vkl_os_time_utc(time_t t, struct tm *out);
void vkl_os_time_local(time_t t, struct tm *out);
/* Logical processors available to this process (at least 1). */
int vkl_os_cpu_count(void);
/* Whether the stream is an interactive terminal / console. */
bool vkl_os_isatty(FILE *f);
/* One line of `f` including its '\n' into *line (grown as needed): its length, or -1 at the end / on error. */
int64_t vkl_os_getline(char **line, size_t *cap, FILE *f);

/* The first occurrence of needle (nn bytes) in haystack (hn bytes), or NULL (GNU memmem). */
void *vkl_os_memmem(const void *haystack, size_t hn, const void *needle, size_t nn);
/* qsort with a context argument, glibc's qsort_r order: cmp(a, b, ctx). */
void vkl_os_qsort_r(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *, void *), void *ctx);

/* Ctrl-C: with a flag, the first Ctrl-C (SIGINT; CTRL_C_EVENT / CTRL_BREAK_EVENT on Windows) sets *flag to 1 and
 * the default handling comes back, so a second one stops the process at once. NULL restores the default now.
 * On POSIX SIGUSR1 does the same (OpenMPI's mpirun forwards it to every rank; its own Ctrl-C ends the job). */
void vkl_os_on_interrupt(volatile sig_atomic_t *flag);
/* End the process at once, as `kill -9` would (no atexit handlers, no buffered output flushed; exit status 137
 * on Windows, where there are no signals). */
void vkl_os_kill_self(void);

/* Process start: on Windows, replace argv by the UTF-8 form of the wide command line (GetCommandLineW) and make the
 * console print UTF-8; on POSIX nothing. The new argv lives until the process exits. */
void vkl_os_init_args(int *argc, char ***argv);

#endif
