/* accesslog — see accesslog.h.
 *
 * Ring protocol (one producer: the worker; one consumer: the writer thread). `head` and `tail`
 * count bytes ever written and ever consumed; the bytes in [tail, head) are pending, at offsets
 * taken modulo the ring size. The producer reads `tail` (acquire) to know the free space, copies
 * the line, then publishes `head` (release); the consumer reads `head` (acquire), writes the
 * bytes out, then publishes `tail` (release). Whole lines only ever enter a ring, so what the
 * writer takes is always a run of whole lines.
 */
#include "core/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/counter.h"
#include "base/util.h"

#define WRITER_PERIOD_MS 20     /* how often the writer drains the rings */
#define WRITE_WAIT_MS 100       /* one wait for a slow destination before checking for stop */
#define STOP_DRAIN_MS 1000      /* at stop: how long to keep writing what is left */

struct accesslog_ring {
    _Alignas(64) _Atomic uint64_t head; /* producer */
    _Alignas(64) _Atomic uint64_t tail; /* consumer */
    _Alignas(64) _Atomic uint64_t dropped; /* producer */
    struct accesslog_ring *next;
    char data[ACCESSLOG_RING_SIZE];
};

static struct {
    pthread_mutex_t lock; /* guards rings (the list), path and the next destination, never a line */
    struct accesslog_ring *rings;
    _Atomic int format; /* enum accesslog_format; a reload may change it while workers read it */
    char *path;
    /* a reload's new destination, taken over by the writer (accesslog_configure) */
    bool next_pending, next_own;
    int next_fd;
    char *next_path;
    int fd;
    bool own_fd, pipe_like;
    _Atomic bool started; /* workers read it (accesslog_current) while a reload may start it */
    _Atomic bool stop, reopen;
    int wake_fd;
    pthread_t thread;
} al = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .wake_fd = -1, .next_fd = -1};

enum accesslog_format accesslog_current(void)
{
    return al.started ? (enum accesslog_format)atomic_load_explicit(&al.format, memory_order_relaxed)
                      : ACCESSLOG_OFF;
}

uint64_t accesslog_dropped(void)
{
    uint64_t n = 0;
    pthread_mutex_lock(&al.lock);
    for (struct accesslog_ring *r = al.rings; r; r = r->next)
        n += counter_get(&r->dropped);
    pthread_mutex_unlock(&al.lock);
    return n;
}

/* ---- producer side (a worker) ---- */

void accesslog_push(struct accesslog_ring *ring, const char *line, size_t len)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    if (len > ACCESSLOG_RING_SIZE - (head - tail)) {
        counter_add(&ring->dropped, 1);
        return;
    }
    size_t at = (size_t)(head & (ACCESSLOG_RING_SIZE - 1));
    size_t first = len < ACCESSLOG_RING_SIZE - at ? len : ACCESSLOG_RING_SIZE - at;
    memcpy(ring->data + at, line, first);
    memcpy(ring->data, line + first, len - first);
    atomic_store_explicit(&ring->head, head + len, memory_order_release);
    /* Crossing half full: wake the writer now rather than at its next period, so a burst does
     * not fill the ring. One eventfd write per half ring (thousands of lines), never per line. */
    uint64_t half = ACCESSLOG_RING_SIZE / 2;
    if (head - tail < half && head + len - tail >= half) {
        uint64_t one = 1;
        (void)!write(al.wake_fd, &one, sizeof(one));
    }
}

struct accesslog_ring *accesslog_ring_new(void)
{
    if (!al.started)
        return NULL;
    struct accesslog_ring *r = aligned_alloc(64, sizeof(*r));
    if (!r)
        return NULL;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->dropped, 0);
    pthread_mutex_lock(&al.lock);
    r->next = al.rings;
    al.rings = r;
    pthread_mutex_unlock(&al.lock);
    return r;
}

/* ---- writer thread ---- */

/* Writes all of buf unless the destination stays blocked past the stop flag. A pipe or socket is
 * waited on with poll() and written PIPE_BUF bytes at a time (a write of at most PIPE_BUF to a
 * pipe with POLLOUT never blocks), so a reader that stopped reading can never hold this thread in
 * write(2) forever. Returns false when it gave up. */
static bool write_all(const char *buf, size_t len, uint64_t give_up_ms)
{
    while (len > 0) {
        if (al.pipe_like) {
            struct pollfd p = {.fd = al.fd, .events = POLLOUT};
            int rc = poll(&p, 1, WRITE_WAIT_MS);
            if (rc == 0) {
                if (atomic_load(&al.stop) && util_now_ms() >= give_up_ms)
                    return false;
                continue;
            }
            if (rc < 0 && errno == EINTR)
                continue;
        }
        size_t n = al.pipe_like ? (len < 4096 ? len : 4096) : len;
        ssize_t w = write(al.fd, buf, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return false; /* the destination is gone: these lines are lost */
        }
        buf += w;
        len -= (size_t)w;
    }
    return true;
}

/* Drains one ring; returns false when the destination gave up. */
static bool drain(struct accesslog_ring *r, uint64_t give_up_ms)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    while (tail < head) {
        size_t at = (size_t)(tail & (ACCESSLOG_RING_SIZE - 1));
        size_t n = (size_t)(head - tail);
        if (n > ACCESSLOG_RING_SIZE - at)
            n = ACCESSLOG_RING_SIZE - at;
        bool ok = write_all(r->data + at, n, give_up_ms);
        tail += n; /* what could not be written is dropped with the destination */
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        if (!ok)
            return false;
    }
    return true;
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static void set_fd(int fd, bool own)
{
    if (al.own_fd && al.fd >= 0)
        close(al.fd);
    al.fd = fd;
    al.own_fd = own;
    struct stat st;
    /* Pipes and sockets can block for good (a reader that stopped): written with poll() and at
     * most PIPE_BUF at a time. Files and devices take whole runs in one write. */
    al.pipe_like = fd >= 0 && fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* A reload named another destination: what the rings hold so far goes to the old one, then the
 * writer switches (its own thread: the only one that writes al.fd). */
static void take_next_destination(void)
{
    pthread_mutex_lock(&al.lock);
    bool pending = al.next_pending;
    pthread_mutex_unlock(&al.lock);
    if (!pending)
        return;
    uint64_t give_up = util_now_ms();
    pthread_mutex_lock(&al.lock);
    struct accesslog_ring *first = al.rings;
    pthread_mutex_unlock(&al.lock);
    for (struct accesslog_ring *r = first; r; r = r->next)
        (void)drain(r, give_up);
    pthread_mutex_lock(&al.lock);
    set_fd(al.next_fd, al.next_own);
    free(al.path);
    al.path = al.next_path;
    al.next_fd = -1;
    al.next_path = NULL;
    al.next_pending = false;
    pthread_mutex_unlock(&al.lock);
}

static void *writer_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p = {.fd = al.wake_fd, .events = POLLIN};
        if (poll(&p, 1, WRITER_PERIOD_MS) == 1) {
            uint64_t n;
            (void)!read(al.wake_fd, &n, sizeof(n)); /* non-blocking: clears the wake-ups */
        }
        bool stopping = atomic_load(&al.stop);
        take_next_destination();
        if (atomic_exchange(&al.reopen, false) && al.path) {
            int fd = open_path(al.path);
            if (fd >= 0)
                set_fd(fd, true);
            else
                log_error("access log: cannot reopen %s: %s", al.path, strerror(errno));
        }
        uint64_t give_up = util_now_ms() + (stopping ? STOP_DRAIN_MS : 0);
        pthread_mutex_lock(&al.lock);
        struct accesslog_ring *first = al.rings;
        pthread_mutex_unlock(&al.lock);
        /* Rings are only ever prepended and freed after this thread is joined: walking the list
         * from a snapshot of its head without the lock is safe. */
        for (struct accesslog_ring *r = first; r; r = r->next)
            if (!drain(r, give_up) && stopping)
                break;
        if (stopping)
            return NULL;
    }
}

int accesslog_start(enum accesslog_format format, const char *path)
{
    if (format == ACCESSLOG_OFF)
        return 0;
    atomic_store(&al.format, (int)format);
    al.path = path ? strdup(path) : NULL;
    if (path && !al.path)
        return -ENOMEM;
    if (path) {
        int fd = open_path(path);
        if (fd < 0) {
            int err = -errno;
            free(al.path);
            al.path = NULL;
            return err;
        }
        set_fd(fd, true);
    } else {
        set_fd(STDOUT_FILENO, false);
    }
    al.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_store(&al.stop, false);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the main thread owns the signals */
    int rc = pthread_create(&al.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        set_fd(-1, false);
        return -rc;
    }
    al.started = true;
    return 0;
}

int accesslog_configure(enum accesslog_format format, const char *path)
{
    if (!al.started)
        return accesslog_start(format, path);
    if (format == ACCESSLOG_OFF) {
        atomic_store(&al.format, (int)ACCESSLOG_OFF); /* the writer stays, idle: cheap */
        return 0;
    }
    pthread_mutex_lock(&al.lock);
    const char *cur = al.next_pending ? al.next_path : al.path;
    bool same = (!path && !cur) || (path && cur && strcmp(path, cur) == 0);
    pthread_mutex_unlock(&al.lock);
    if (!same) {
        /* Opened here, so that a destination that cannot be opened fails the reload. */
        int fd = path ? open_path(path) : STDOUT_FILENO;
        if (fd < 0)
            return -errno;
        char *copy = path ? strdup(path) : NULL;
        if (path && !copy) {
            close(fd);
            return -ENOMEM;
        }
        pthread_mutex_lock(&al.lock);
        if (al.next_pending && al.next_own && al.next_fd >= 0)
            close(al.next_fd);
        free(al.next_path);
        al.next_fd = fd;
        al.next_own = path != NULL;
        al.next_path = copy;
        al.next_pending = true;
        pthread_mutex_unlock(&al.lock);
        uint64_t one = 1;
        (void)!write(al.wake_fd, &one, sizeof(one));
        /* Wait (a writer period at most, a reload is no hot path) until the writer has switched:
         * lines pushed from now on go to the new destination, those before to the old one. */
        uint64_t deadline = util_now_ms() + 2000;
        for (;;) {
            pthread_mutex_lock(&al.lock);
            bool pending = al.next_pending;
            pthread_mutex_unlock(&al.lock);
            if (!pending || util_now_ms() >= deadline)
                break;
            struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&ms, NULL);
        }
    }
    atomic_store(&al.format, (int)format);
    return 0;
}

void accesslog_reopen(void)
{
    atomic_store(&al.reopen, true);
}

void accesslog_stop(void)
{
    if (!al.started)
        return;
    atomic_store(&al.stop, true);
    uint64_t one = 1;
    if (al.wake_fd >= 0)
        (void)!write(al.wake_fd, &one, sizeof(one));
    pthread_join(al.thread, NULL);
    al.started = false;
    pthread_mutex_lock(&al.lock);
    while (al.rings) {
        struct accesslog_ring *r = al.rings;
        al.rings = r->next;
        free(r);
    }
    pthread_mutex_unlock(&al.lock);
    if (al.wake_fd >= 0)
        close(al.wake_fd);
    al.wake_fd = -1;
    if (al.own_fd && al.fd >= 0)
        close(al.fd);
    al.fd = -1;
    al.own_fd = false;
    free(al.path);
    al.path = NULL;
    if (al.next_pending && al.next_own && al.next_fd >= 0)
        close(al.next_fd);
    free(al.next_path);
    al.next_path = NULL;
    al.next_fd = -1;
    al.next_pending = false;
}
