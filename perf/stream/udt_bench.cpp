// SPDX-License-Identifier: MIT
// UDT peer for perf/stream/bench-wan.sh: a bulk transfer with UDT4
// (Debian libudt-dev), its default congestion control, to put next to
// wccl-xfer and iperf3 on the same emulated path. Not part of libwccl.
//
//   udt_bench server PORT [MSS]          accept one sender, receive until it
//                                        closes; print JSON (receiver side)
//   udt_bench client HOST PORT SECS [MSS]  send zeros for SECS seconds
//
// Every blocking call is bounded: UDT_RCVTIMEO / UDT_SNDTIMEO of 5 s, the
// server gives up after 60 s without a sender.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <udt/udt.h>

static double now_s()
{
	timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fail(const char *what)
{
	fprintf(stderr, "udt_bench: %s: %s\n", what,
		UDT::getlasterror().getErrorMessage());
	return 1;
}

static void tune(UDTSOCKET s, int mss)
{
	int buf = 64 << 20, to = 5000;
	if (mss > 0)
		UDT::setsockopt(s, 0, UDT_MSS, &mss, sizeof(mss));
	UDT::setsockopt(s, 0, UDT_SNDBUF, &buf, sizeof(buf));
	UDT::setsockopt(s, 0, UDT_RCVBUF, &buf, sizeof(buf));
	int ubuf = 16 << 20;
	UDT::setsockopt(s, 0, UDP_SNDBUF, &ubuf, sizeof(ubuf));
	UDT::setsockopt(s, 0, UDP_RCVBUF, &ubuf, sizeof(ubuf));
	UDT::setsockopt(s, 0, UDT_RCVTIMEO, &to, sizeof(to));
	UDT::setsockopt(s, 0, UDT_SNDTIMEO, &to, sizeof(to));
}

static int server(int port, int mss)
{
	UDTSOCKET l = UDT::socket(AF_INET, SOCK_STREAM, 0);
	tune(l, mss);
	sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = INADDR_ANY;
	if (UDT::bind(l, (sockaddr *)&a, sizeof(a)) == UDT::ERROR)
		return fail("bind");
	if (UDT::listen(l, 1) == UDT::ERROR)
		return fail("listen");
	// accept() has no timeout of its own: a non-blocking listener polled.
	bool no = false;
	UDT::setsockopt(l, 0, UDT_RCVSYN, &no, sizeof(no));
	printf("listening\n");
	fflush(stdout);
	UDTSOCKET c = UDT::INVALID_SOCK;
	for (double dl = now_s() + 60; c == UDT::INVALID_SOCK;) {
		sockaddr_in p;
		int pl = sizeof(p);
		c = UDT::accept(l, (sockaddr *)&p, &pl);
		if (c == UDT::INVALID_SOCK) {
			if (now_s() > dl)
				return fail("no sender within 60 s");
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL);
		}
	}
	bool yes = true; // the accepted socket inherits non-blocking
	UDT::setsockopt(c, 0, UDT_RCVSYN, &yes, sizeof(yes));
	static char buf[1 << 20];
	long long total = 0;
	double t0 = 0, t1 = 0;
	for (;;) {
		int n = UDT::recv(c, buf, sizeof(buf), 0);
		if (n == UDT::ERROR || n == 0)
			break; // peer closed (or 5 s silent)
		if (!total)
			t0 = now_s();
		total += n;
		t1 = now_s();
	}
	double sec = t1 > t0 ? t1 - t0 : 0;
	printf("{\"bytes\": %lld, \"seconds\": %.6f, \"goodput_mbps\": %.3f}\n",
	       total, sec, sec > 0 ? (double)total * 8 / sec / 1e6 : 0.0);
	UDT::close(c);
	UDT::close(l);
	return total > 0 ? 0 : 1;
}

static int client(const char *host, int port, double secs, int mss)
{
	UDTSOCKET s = UDT::socket(AF_INET, SOCK_STREAM, 0);
	tune(s, mss);
	sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "udt_bench: bad address %s\n", host);
		return 2;
	}
	if (UDT::connect(s, (sockaddr *)&a, sizeof(a)) == UDT::ERROR)
		return fail("connect");
	static char buf[1 << 20];
	long long total = 0;
	for (double end = now_s() + secs; now_s() < end;) {
		int n = UDT::send(s, buf, sizeof(buf), 0);
		if (n == UDT::ERROR)
			return fail("send");
		total += n;
	}
	// Let the receiver have the tail before closing (bounded by linger).
	UDT::close(s);
	printf("{\"sent\": %lld}\n", total);
	return 0;
}

int main(int argc, char **argv)
{
	UDT::startup();
	int rc = 2;
	if (argc >= 3 && !strcmp(argv[1], "server"))
		rc = server(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 0);
	else if (argc >= 5 && !strcmp(argv[1], "client"))
		rc = client(argv[2], atoi(argv[3]), atof(argv[4]),
			    argc > 5 ? atoi(argv[5]) : 0);
	else
		fprintf(stderr, "usage: udt_bench server PORT [MSS] | client "
				"HOST PORT SECS [MSS]\n");
	UDT::cleanup();
	return rc;
}
