// hack/first-calls.c: which functions of a program run, in the order they
// first run, across the program and every process it forks (hack/order
// uses it to lay out brig's text).
//
//   first-calls ADDRS HITS -- PROGRAM ARGS...
//
// ADDRS holds one function entry address per line (hex, as nm prints them).
// Runs PROGRAM under ptrace, follows forks, clones and execs, and puts a
// breakpoint (int3) on every listed address in every process whose image is
// PROGRAM's binary (the same file, also when reached through another path
// or a detached mount). A breakpoint that fires is appended (hex address)
// to the file HITS and removed from that process; each address is written
// once. PROGRAM keeps the tool's stdin, stdout and stderr.
// Processes that exec anything else are let go. Exits with PROGRAM's status.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t *addrs;
static long *words; // the original word at each address (its low byte matters)
static char *seen;
static size_t n;
static dev_t bin_dev;
static ino_t bin_ino;

static void die(const char *what) {
  perror(what);
  exit(125);
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static long find(uint64_t a) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (addrs[mid] == a)
      return (long)mid;
    if (addrs[mid] < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static int is_program(pid_t pid) {
  char p[64];
  struct stat st;
  snprintf(p, sizeof p, "/proc/%d/exe", pid);
  return stat(p, &st) == 0 && st.st_dev == bin_dev && st.st_ino == bin_ino;
}

// Arms every breakpoint not yet seen in a fresh image of the program.
static void arm(pid_t pid) {
  for (size_t i = 0; i < n; i++) {
    if (seen[i])
      continue;
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)addrs[i], 0);
    if (errno)
      die("PTRACE_PEEKTEXT");
    words[i] = w;
    if (ptrace(PTRACE_POKETEXT, pid, (void *)addrs[i], (void *)((w & ~0xffL) | 0xcc)))
      die("PTRACE_POKETEXT");
  }
}

int main(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--")) {
    fprintf(stderr, "usage: first-calls ADDRS HITS -- PROGRAM ARGS...\n");
    return 2;
  }
  FILE *hits = fopen(argv[2], "a");
  if (!hits)
    die(argv[2]);
  FILE *f = fopen(argv[1], "r");
  if (!f)
    die(argv[1]);
  size_t cap = 1024;
  addrs = malloc(cap * sizeof *addrs);
  unsigned long long a;
  while (fscanf(f, "%llx", &a) == 1) {
    if (n == cap)
      addrs = realloc(addrs, (cap *= 2) * sizeof *addrs);
    addrs[n++] = a;
  }
  fclose(f);
  qsort(addrs, n, sizeof *addrs, cmp);
  words = calloc(n, sizeof *words);
  seen = calloc(n, 1);
  struct stat st;
  if (stat(argv[4], &st))
    die(argv[4]);
  bin_dev = st.st_dev;
  bin_ino = st.st_ino;

  pid_t first = fork();
  if (first < 0)
    die("fork");
  if (first == 0) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0))
      die("PTRACE_TRACEME");
    raise(SIGSTOP);
    execv(argv[4], argv + 4);
    die(argv[4]);
  }
  int status, exit_code = 125;
  if (waitpid(first, &status, 0) != first || !WIFSTOPPED(status))
    die("waiting for the program to stop");
  long opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
              PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
  if (ptrace(PTRACE_SETOPTIONS, first, 0, (void *)opts))
    die("PTRACE_SETOPTIONS");
  ptrace(PTRACE_CONT, first, 0, 0);
  for (;;) {
    pid_t pid = waitpid(-1, &status, __WALL);
    if (pid < 0) {
      if (errno == ECHILD)
        break;
      die("waitpid");
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (pid == first)
        exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      continue;
    }
    if (!WIFSTOPPED(status))
      continue;
    int sig = WSTOPSIG(status), event = status >> 16, deliver = 0;
    if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
      if (is_program(pid)) {
        arm(pid);
      } else {
        ptrace(PTRACE_DETACH, pid, 0, 0);
        continue;
      }
    } else if (sig == SIGTRAP && event) {
      // A fork or clone: the child arrives on its own, stopped.
    } else if (sig == SIGTRAP) {
      struct user_regs_struct r;
      if (ptrace(PTRACE_GETREGS, pid, 0, &r))
        die("PTRACE_GETREGS");
      long i = find(r.rip - 1);
      if (i >= 0) {
        if (!seen[i]) {
          seen[i] = 1;
          fprintf(hits, "%llx\n", (unsigned long long)addrs[i]);
        }
        r.rip -= 1;
        // Only the one byte: a neighbour's int3 may sit in the same word.
        errno = 0;
        long cur = ptrace(PTRACE_PEEKTEXT, pid, (void *)addrs[i], 0);
        if (errno)
          die("PTRACE_PEEKTEXT");
        ptrace(PTRACE_POKETEXT, pid, (void *)addrs[i], (void *)((cur & ~0xffL) | (words[i] & 0xff)));
        ptrace(PTRACE_SETREGS, pid, 0, &r);
      } else {
        deliver = sig;
      }
    } else if (sig == SIGSTOP && event == 0) {
      // A new child's first stop, or a real SIGSTOP: either way go on.
    } else {
      deliver = sig;
    }
    ptrace(PTRACE_CONT, pid, 0, (void *)(long)deliver);
  }
  if (fclose(hits))
    die(argv[2]);
  return exit_code;
}
