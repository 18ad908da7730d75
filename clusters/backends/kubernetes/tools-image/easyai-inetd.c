/*
 * easyai-inetd: run a program with a socket for its standard input and output.
 *
 *     easyai-inetd PROGRAM [ARGS...]
 *
 * Dropbear's inetd mode (-i) serves one connection on its standard input and output and refuses anything but a
 * socket there; the Kubernetes exec API gives a command pipes. This makes an AF_UNIX socket pair, runs PROGRAM
 * with one end as its standard input and output (standard error is left as it is), and copies between its own
 * standard input and output and the other end: its standard input's end is passed on as a half-close of the
 * socket, the program's (the socket's end) as the close of its standard output. It exits with the program's
 * status (128 + the signal's number when a signal ended it).
 *
 * Built statically (gcc -static) so that it runs in any image; it uses nothing but the C library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUFFER 65536

/* One direction of the copy: bytes read from `from` wait in `buffer` until `to` takes them. */
struct direction {
    int from, to;
    char buffer[BUFFER];
    size_t start, end;
    int ended; /* `from` reached its end (or failed) */
    int done;  /* nothing more goes this way */
};

static void read_into(struct direction *d) {
    ssize_t got = read(d->from, d->buffer, BUFFER);
    if (got > 0) {
        d->start = 0;
        d->end = (size_t)got;
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        d->ended = 1;
    }
}

/* Writes what waits; at most `most` bytes at once (a pipe we do not own stays blocking: after POLLOUT it takes
 * PIPE_BUF bytes without blocking). Returns -1 when the reader of `to` went away. */
static int write_from(struct direction *d, size_t most) {
    size_t length = d->end - d->start;
    ssize_t written = write(d->to, d->buffer + d->start, length < most ? length : most);
    if (written < 0)
        return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    d->start += (size_t)written;
    if (d->start == d->end)
        d->start = d->end = 0;
    return 0;
}

static int exit_status(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

static struct direction in, out; /* our input to the program; the program's output to ours */

int main(int argc, char **argv) {
    int pair[2];
    if (argc < 2) {
        fprintf(stderr, "usage: easyai-inetd PROGRAM [ARGS...]\n");
        return 2;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) {
        perror("easyai-inetd: socketpair");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("easyai-inetd: fork");
        return 1;
    }
    if (child == 0) {
        close(pair[0]);
        if (dup2(pair[1], 0) < 0 || dup2(pair[1], 1) < 0) {
            perror("easyai-inetd: dup2");
            _exit(127);
        }
        if (pair[1] > 1)
            close(pair[1]);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "easyai-inetd: %s: %s\n", argv[1], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    close(pair[1]);
    signal(SIGPIPE, SIG_IGN);
    int sock = pair[0];
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK); /* ours alone: our standard input and output are not */
    in.from = 0;
    in.to = sock;
    out.from = sock;
    out.to = 1;

    int status = 0, reaped = 0;
    while (!out.done || !reaped) {
        struct pollfd fds[4];
        nfds_t count = 0;
        int in_read = -1, in_write = -1, out_read = -1, out_write = -1;
        if (!in.done && in.start == in.end && !in.ended) {
            fds[count] = (struct pollfd){.fd = in.from, .events = POLLIN};
            in_read = (int)count++;
        } else if (!in.done && in.start != in.end) {
            fds[count] = (struct pollfd){.fd = in.to, .events = POLLOUT};
            in_write = (int)count++;
        }
        if (!out.done && out.start == out.end && !out.ended) {
            fds[count] = (struct pollfd){.fd = out.from, .events = POLLIN};
            out_read = (int)count++;
        } else if (!out.done && out.start != out.end) {
            fds[count] = (struct pollfd){.fd = out.to, .events = POLLOUT};
            out_write = (int)count++;
        }
        /* Once the program's output has ended, only its exit is waited for: our standard input may never end
         * (the exec API's does not while the session lasts). */
        int ready = poll(fds, count, out.done ? 100 : -1);
        if (ready < 0 && errno != EINTR) {
            perror("easyai-inetd: poll");
            break;
        }
        if (ready > 0) {
            if (in_read >= 0 && fds[in_read].revents)
                read_into(&in);
            if (in_write >= 0 && fds[in_write].revents && write_from(&in, BUFFER) < 0)
                in.done = 1; /* the program no longer reads */
            if (out_read >= 0 && fds[out_read].revents)
                read_into(&out);
            if (out_write >= 0 && fds[out_write].revents && write_from(&out, PIPE_BUF) < 0) {
                /* Our reader went away: the program gets the end of both directions. */
                out.done = in.done = 1;
                shutdown(sock, SHUT_RDWR);
            }
        }
        if (!in.done && in.ended && in.start == in.end) {
            in.done = 1;
            shutdown(sock, SHUT_WR); /* the program reads the end of its input */
        }
        if (!out.done && out.ended && out.start == out.end) {
            out.done = 1;
            close(1); /* our reader sees the end of the program's output */
        }
        if (out.done && !reaped) {
            pid_t done = waitpid(child, &status, WNOHANG);
            if (done == child)
                reaped = 1;
            else if (done < 0 && errno != EINTR)
                break;
        }
    }
    if (!reaped) {
        while (waitpid(child, &status, 0) < 0) {
            if (errno != EINTR)
                return 1;
        }
    }
    return exit_status(status);
}
