/* The platform layer on POSIX systems (Linux, the BSDs, macOS): thin wrappers over the system calls the rest of
 * vklora used directly before (see src/platform.h for the contract). */
#include "platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *vkl_os_fopen(const char *path, const char *mode) { return fopen(path, mode); }

bool vkl_os_create_temp(char *tmpl, const char *mode_of, vkl_os_file *out) {
    int fd = mkstemp(tmpl);
    if (fd < 0) return false;
    /* mkstemp makes the file 0600; keep the mode of the file being replaced, else the usual 0644. */
    struct stat sb;
    if (fchmod(fd, mode_of && stat(mode_of, &sb) == 0 ? (sb.st_mode & 07777) : 0644) != 0) { /* mode only */ }
    *out = fd;
    return true;
}

bool vkl_os_open_append(const char *path, vkl_os_file *out) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    *out = fd;
    return true;
}

int64_t vkl_os_write(vkl_os_file f, const void *p, size_t n) { return write((int)f, p, n); }

bool vkl_os_write_all(vkl_os_file f, const void *p, uint64_t n) {
    const uint8_t *c = p;
    while (n > 0) {
        ssize_t k = write((int)f, c, (size_t)(n < ((uint64_t)1 << 30) ? n : ((uint64_t)1 << 30)));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return false;
        }
        c += k;
        n -= (uint64_t)k;
    }
    return true;
}

int64_t vkl_os_file_size(vkl_os_file f) { return lseek((int)f, 0, SEEK_END); }

bool vkl_os_truncate(vkl_os_file f, int64_t size) { return ftruncate((int)f, (off_t)size) == 0; }

bool vkl_os_sync(vkl_os_file f) { return fsync((int)f) == 0; }

bool vkl_os_close(vkl_os_file f) { return close((int)f) == 0; }

bool vkl_os_replace(const char *from, const char *to) { return rename(from, to) == 0; }

void vkl_os_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

bool vkl_os_remove(const char *path) { return unlink(path) == 0; }

bool vkl_os_mkdir(const char *path) { return mkdir(path, 0755) == 0; }

bool vkl_os_rmdir(const char *path) { return rmdir(path) == 0; }

bool vkl_os_is_sep(char c) { return c == '/'; }

vkl_path_kind vkl_os_path_kind(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return VKL_PATH_NONE;
    return S_ISREG(sb.st_mode) ? VKL_PATH_FILE : S_ISDIR(sb.st_mode) ? VKL_PATH_DIR : VKL_PATH_OTHER;
}

struct vkl_os_dir {
    DIR *d;
};

vkl_os_dir *vkl_os_opendir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return NULL;
    vkl_os_dir *h = malloc(sizeof(*h));
    if (!h) {
        closedir(d);
        errno = ENOMEM;
        return NULL;
    }
    h->d = d;
    return h;
}

const char *vkl_os_readdir(vkl_os_dir *h) {
    struct dirent *e;
    while ((e = readdir(h->d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) return e->d_name;
    return NULL;
}

void vkl_os_closedir(vkl_os_dir *h) {
    if (!h) return;
    closedir(h->d);
    free(h);
}

bool vkl_os_map(const char *path, const void **data, uint64_t *size, const char **failed) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *failed = "open";
        return false;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        *failed = "stat";
        errno = e;
        return false;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        *failed = "type";
        errno = 0;
        return false;
    }
    if (sb.st_size > 0) { /* mmap rejects a zero length; the parsers report an empty file */
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            *failed = "map";
            *size = (uint64_t)sb.st_size;
            errno = e;
            return false;
        }
        *data = m;
        *size = (uint64_t)sb.st_size;
    }
    close(fd); /* the mapping keeps the file */
    return true;
}

void vkl_os_unmap(const void *data, uint64_t size) {
    if (data) munmap((void *)data, (size_t)size);
}

double vkl_os_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void vkl_os_time_utc(time_t t, struct tm *out) { gmtime_r(&t, out); }

void vkl_os_time_local(time_t t, struct tm *out) { localtime_r(&t, out); }

int vkl_os_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (n > 65536 ? 65536 : (int)n) : 1;
}

bool vkl_os_isatty(FILE *f) { return isatty(fileno(f)); }

int64_t vkl_os_getline(char **line, size_t *cap, FILE *f) { return getline(line, cap, f); }

void *vkl_os_memmem(const void *haystack, size_t hn, const void *needle, size_t nn) {
    return memmem(haystack, hn, needle, nn);
}

void vkl_os_qsort_r(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *, void *), void *ctx) {
    qsort_r(base, n, size, cmp, ctx);
}

static volatile sig_atomic_t *interrupt_flag;

static void on_sigint(int sig) {
    if (interrupt_flag) *interrupt_flag = 1;
    signal(sig, SIG_DFL);
}

void vkl_os_on_interrupt(volatile sig_atomic_t *flag) {
    interrupt_flag = flag;
    signal(SIGINT, flag ? on_sigint : SIG_DFL);
    signal(SIGUSR1, flag ? on_sigint : SIG_DFL); /* what mpirun forwards to every rank (its Ctrl-C ends the job) */
}

void vkl_os_kill_self(void) { raise(SIGKILL); }

void vkl_os_init_args(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
}
