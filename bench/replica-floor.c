// bench/replica-floor.c: the data movement of replica:3 1 MiB writes on loopback and nothing
// else, to tell what the kernel costs from what qstora adds. Four processes: an initiator
// streams 1 MiB messages (8 in flight) to A; A writes each into its file (pwrite, the page cache)
// and sends it to B and C over TCP; B and C write it into theirs and answer 8 bytes; A answers
// the initiator once both have. No checksum, no MAC, no copy in user space: the same kernel
// copies as a replicated write (3 sockets in, 2 out of A, 3 pwrites), and only those.
//   cc -O2 -o replica-floor bench/replica-floor.c && ./replica-floor PORT SECONDS DIR
// Prints {"floor_iops":N,"acked":M} of the timed part; files DIR/{a,b,c}.img of 1 GiB each (the
// range rewritten; the first pass over it is not timed).
// Run by bench/replica-floor.sh beside tgt.
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define MIB (1 << 20)
#define SLOTS 1024 /* MiB of each file: the range written over and over */
#define INFLIGHT 8
#define ACK_LAG 4  /* A answers message k once it has sent k + ACK_LAG: a pipeline, not a lockstep */

static void readAll(int fd, void *b, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, (char *)b + got, n - got);
    if (r <= 0) exit(0);
    got += (size_t)r;
  }
}

static void writeAll(int fd, const void *b, size_t n) {
  for (size_t put = 0; put < n;) {
    ssize_t r = write(fd, (const char *)b + put, n - put);
    if (r <= 0) exit(1);
    put += (size_t)r;
  }
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(0x7f000001) };
  return a;
}

static void noDelay(int s) {
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int acceptOne(int port) {
  int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = loopback(port);
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) { perror("replica-floor: listen"); exit(1); }
  int s = accept(l, NULL, NULL);
  noDelay(s);
  return s;
}

static int connectTo(int port) {
  for (;;) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(port);
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) { noDelay(s); return s; }
    close(s);
    usleep(10000);
  }
}

static int openFile(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) { perror(path); exit(1); }
  return fd;
}

static void persist(int fd, const char *b, uint64_t k) {
  if (pwrite(fd, b, MIB, (off_t)(k % SLOTS) * MIB) != MIB) { perror("replica-floor: pwrite"); exit(1); }
}

static void secondary(int port, int fd) {
  int s = acceptOne(port);
  char *b = malloc(MIB);
  for (uint64_t k = 0;; k++) {
    readAll(s, b, MIB);
    persist(fd, b, k);
    writeAll(s, &k, 8);
  }
}

static void primary(int port, int fd) {
  int in = acceptOne(port), sb = connectTo(port + 1), sc = connectTo(port + 2);
  char *b = malloc(MIB);
  uint64_t ack;
  for (uint64_t k = 0;; k++) {
    readAll(in, b, MIB);
    persist(fd, b, k);
    writeAll(sb, b, MIB);
    writeAll(sc, b, MIB);
    if (k < ACK_LAG) continue;
    readAll(sb, &ack, 8);
    readAll(sc, &ack, 8);
    writeAll(in, &ack, 8);
  }
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: replica-floor PORT SECONDS DIR\n"); return 2; }
  int port = atoi(argv[1]);
  double secs = atof(argv[2]);
  const char *dir = argv[3];
  setpgid(0, 0);
  if (fork() == 0) secondary(port + 1, openFile(dir, "b.img"));
  if (fork() == 0) secondary(port + 2, openFile(dir, "c.img"));
  if (fork() == 0) primary(port, openFile(dir, "a.img"));
  int s = connectTo(port);
  char *b = malloc(MIB);
  memset(b, 0x5a, MIB);
  // The first pass over the files (SLOTS MiB) is not timed: it allocates their blocks and page
  // cache, which a LUN's prefill has done before it is measured.
  uint64_t sent = 0, acked = 0, ack, timedFrom = 0;
  double t0 = 0, end = 0;
  while (t0 == 0 || seconds() < end) {
    while (sent - acked >= INFLIGHT) {
      readAll(s, &ack, 8);
      if (++acked == SLOTS) { t0 = seconds(); end = t0 + secs; timedFrom = acked; }
    }
    memcpy(b, &sent, sizeof sent);
    writeAll(s, b, MIB);
    sent++;
  }
  printf("{\"floor_iops\":%.0f,\"acked\":%llu}\n", (double)(acked - timedFrom) / (seconds() - t0), (unsigned long long)(acked - timedFrom));
  fflush(stdout);
  signal(SIGTERM, SIG_IGN);
  kill(0, SIGTERM);
  return 0;
}
