/* SPDX-License-Identifier: MIT */
/*
 * http-get.c - fetch one http:// or https:// URL, like a very small curl.
 *
 *   http-get [-o FILE] [-t MS] [--cacert FILE] [-k|--insecure] URL
 *
 *   $ ./http-get http://127.0.0.1:8000/index.html > index.html
 *   HTTP/1.0 200 OK
 *   Server: SimpleHTTP/0.6 Python/3.11.2
 *   ...
 *   $ ./http-get https://example.com/ > page.html
 *
 * Sends "GET" for URL (http[s]://host[:port][/path], IPv6 literals in
 * brackets: http://[::1]:8080/), prints the status line and the headers to
 * stderr and writes the body, byte for byte, to stdout or FILE. A chunked
 * body (Transfer-Encoding: chunked) is decoded. https:// is the same
 * conversation inside TLS: the server's certificate is checked against the
 * system's trusted authorities (or --cacert) and against the host name.
 *
 * What it shows: that a protocol on top of TCP must say where a message
 * ends (here: a blank line ends the headers, then Content-Length, chunk
 * sizes or the end of the stream ends the body); reading a header section
 * line by line with bounded line lengths; switching from lines to raw bytes
 * on the same connection; and streaming a body of any size through a fixed
 * 64 KiB buffer instead of holding it all in memory.
 *
 * Read it top to bottom: first how a response is read (read_head(),
 * copy_body(), copy_chunked()), then how main() connects (with TLS for
 * https://), sends the request and picks how the body ends. Taking the URL
 * apart is string handling, not networking: it is an appendix at the end.
 *
 * Exit status: 0 for any HTTP response (also 404 or 500: the transfer
 * worked), 1 for a network error, a refused certificate (the reason on
 * stderr, e.g. "certificate has expired") or a malformed response, 2 for
 * bad usage or a bad URL.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <tcpkit.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS 30000 /* for connecting, and for every single wait */
#define MAX_LINE 8192            /* longest status, header or chunk-size line */
#define MAX_HEADERS 100          /* header lines per response */
#define MAX_INTERIM 10           /* "100 Continue"-style responses before the real one */
#define CHUNK 65536              /* the body goes through a buffer this big */

static void usage(FILE *out)
{
    fputs("usage: http-get [-o FILE] [-t MS] [--cacert FILE] [-k|--insecure] URL\n"
          "\n"
          "Fetches URL (http[s]://host[:port][/path]; IPv6 as http://[::1]:8080/),\n"
          "prints the status line and headers to stderr, and writes the body to\n"
          "stdout or FILE. Exits 0 for any HTTP response, 1 on a network error, a\n"
          "refused certificate or a malformed response, 2 for a bad URL.\n"
          "\n"
          "  -o FILE        write the body to FILE instead of stdout\n"
          "  -t MS          give up if connecting, or any single wait for data, takes\n"
          "                 longer than MS milliseconds (default 30000)\n"
          "  --cacert FILE  https: trust the CAs in FILE (PEM) instead of the system's\n"
          "  -k, --insecure https: DANGEROUS, accept any certificate for any name\n"
          "  -h, --help     show this help\n",
          out);
}

static void die(const char *what, const char *reason)
{
    fprintf(stderr, "http-get: %s: %s\n", what, reason);
    exit(1);
}

/* A failed libtcpkit call. Its message already names the operation, e.g.
 * "connect localhost:9999: ::1 port 9999: connection refused", so it is
 * printed as it is: "http-get: connect ...", not "http-get: connect: connect ...". */
static void die_tk(void)
{
    fprintf(stderr, "http-get: %s\n", tcpkit_last_error());
    exit(1);
}

/* A response that breaks HTTP/1.1 (RFC 9112) is an error too: exit 1. */
static void malformed(const char *reason)
{
    die("malformed response", reason);
}

static void usage_error(const char *fmt, const char *arg)
{
    fputs("http-get: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    usage(stderr);
    exit(2);
}

/* The URL, taken apart by parse_url() at the end of this file. */
struct url {
    bool tls;            /* https:// */
    char host[256];      /* for tcpkit_connect(): a name or a bare IPv6 literal */
    char port[6];        /* "80" or "443" unless the URL says otherwise */
    char authority[300]; /* for the Host header: "[::1]:8080", "example.com" */
    const char *slash;   /* "/" before a path that starts with "?", else "" */
    const char *path;    /* "/..." from the URL (without the #fragment) */
    size_t path_len;
};

static const char *parse_url(const char *s, struct url *u);

/* ---- reading the response ------------------------------------------------ */

static FILE *body_out;
static const char *body_name = "standard output";

/* Reads one line of the response head into buf (NUL-terminated, line ending
 * removed). Returns false at end of stream before any byte. */
static bool read_line(tcpkit_conn *conn, char *buf, const char *what)
{
    size_t len;
    tcpkit_err err = tcpkit_recv_line(conn, buf, MAX_LINE, &len);
    if (err == TCPKIT_EOF)
        return false;
    if (err == TCPKIT_ETOOBIG) {
        fprintf(stderr, "http-get: malformed response: %s longer than %d bytes\n", what,
                MAX_LINE - 1);
        exit(1);
    }
    if (err != TCPKIT_OK)
        die_tk();
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (memchr(buf, '\0', len))
        malformed("NUL byte in the response head");
    buf[len] = '\0';
    return true;
}

struct head {
    int status;
    bool chunked;        /* Transfer-Encoding ends in "chunked" */
    bool other_encoding; /* another Transfer-Encoding: body ends at EOF */
    bool has_length;     /* Content-Length was given */
    unsigned long long length;
};

/* Parses a decimal Content-Length; false if it is not one. */
static bool parse_length(const char *s, unsigned long long *out)
{
    unsigned long long v = 0;
    if (!isdigit((unsigned char)*s))
        return false;
    for (; isdigit((unsigned char)*s); s++) {
        if (v > (ULLONG_MAX - 9) / 10)
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    while (*s == ' ' || *s == '\t')
        s++;
    *out = v;
    return *s == '\0';
}

/* True if the comma-separated list ends with "chunked" (RFC 9112, 6.1). */
static bool ends_with_chunked(const char *value)
{
    const char *last = strrchr(value, ',');
    last = last ? last + 1 : value;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strcspn(last, " \t;");
    return n == 7 && strncasecmp(last, "chunked", 7) == 0;
}

/* One header line: "Name: value". */
static void parse_header(char *line, struct head *h)
{
    char *colon = strchr(line, ':');
    if (line[0] == ' ' || line[0] == '\t')
        malformed("folded header line");
    if (colon == NULL || colon == line || strcspn(line, " \t") < (size_t)(colon - line))
        malformed("header line without a valid name");
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t vlen = strlen(value);
    while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
        value[--vlen] = '\0';

    if (strcasecmp(line, "Transfer-Encoding") == 0) {
        if (ends_with_chunked(value))
            h->chunked = true;
        else
            h->other_encoding = true;
    } else if (strcasecmp(line, "Content-Length") == 0) {
        unsigned long long n;
        if (!parse_length(value, &n))
            malformed("bad Content-Length");
        if (h->has_length && n != h->length)
            malformed("conflicting Content-Length headers");
        h->has_length = true;
        h->length = n;
    }
}

/* Reads a status line and its headers, echoing them to stderr. */
static void read_head(tcpkit_conn *conn, struct head *h, bool first)
{
    char line[MAX_LINE];
    memset(h, 0, sizeof *h);
    if (!read_line(conn, line, "status line"))
        malformed(first ? "the server closed the connection without a response"
                        : "the connection closed after an interim response");
    /* "HTTP/1.1 200 OK": version, space, three digits, then space or end. */
    if (strncmp(line, "HTTP/", 5) != 0 || !isdigit((unsigned char)line[5]) || line[6] != '.' ||
        !isdigit((unsigned char)line[7]) || line[8] != ' ' || !isdigit((unsigned char)line[9]) ||
        !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
        (line[12] != ' ' && line[12] != '\0'))
        malformed("bad status line (not HTTP)");
    h->status = atoi(line + 9);
    fprintf(stderr, "%s\n", line);

    for (int n = 0;; n++) {
        if (!read_line(conn, line, "header line"))
            malformed("the connection closed inside the headers");
        if (line[0] == '\0')
            return; /* the blank line: the head is complete */
        if (n == MAX_HEADERS)
            malformed("too many header lines");
        fprintf(stderr, "%s\n", line);
        parse_header(line, h);
    }
}

static void write_body(const char *buf, size_t len)
{
    if (fwrite(buf, 1, len, body_out) != len)
        die(body_name, strerror(errno));
}

/*
 * Copies body bytes to the output: exactly `want` of them, or with
 * until_eof everything until the server closes.
 *
 * tcpkit_recv() returns what has arrived, up to the buffer size: never
 * assume one receive brings the whole body, or even a whole chunk. Bytes
 * that tcpkit_recv_line() read ahead while reading the headers are returned
 * first, so switching from lines to raw bytes loses nothing.
 *
 * Over https://, a body that ends with the stream must end with TLS's own
 * goodbye (close_notify). A bare TCP end of stream is TCPKIT_ETLS, not
 * TCPKIT_EOF: anyone on the path can cut a connection, and a cut download
 * must not pass for a complete one.
 */
static void copy_body(tcpkit_conn *conn, unsigned long long want, bool until_eof)
{
    static char buf[CHUNK];
    unsigned long long done = 0;
    while (until_eof || done < want) {
        size_t cap = sizeof buf;
        if (!until_eof && want - done < cap)
            cap = (size_t)(want - done);
        size_t got;
        tcpkit_err err = tcpkit_recv(conn, buf, cap, &got);
        if (err == TCPKIT_EOF && until_eof)
            return;
        if (err == TCPKIT_EOF) {
            fprintf(stderr,
                    "http-get: malformed response: body truncated after %llu of %llu bytes\n", done,
                    want);
            exit(1);
        }
        if (err != TCPKIT_OK)
            die_tk();
        write_body(buf, got);
        done += got;
    }
}

/*
 * Transfer-Encoding: chunked (RFC 9112, section 7.1). The body comes as
 * chunks, each "SIZE-IN-HEX[;extension] CRLF DATA CRLF", ended by a chunk of
 * size 0, optional trailer lines and a blank line.
 */
static void copy_chunked(tcpkit_conn *conn)
{
    char line[MAX_LINE];
    for (;;) {
        if (!read_line(conn, line, "chunk size line"))
            malformed("the connection closed inside the chunked body");
        unsigned long long size = 0;
        const char *p = line;
        if (!isxdigit((unsigned char)*p))
            malformed("bad chunk size");
        for (; isxdigit((unsigned char)*p); p++) {
            if (size > (ULLONG_MAX >> 4))
                malformed("chunk size too large");
            int d = isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10;
            size = size * 16 + (unsigned)d;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != ';')
            malformed("bad chunk size");
        if (size == 0)
            break;
        copy_body(conn, size, false);
        if (!read_line(conn, line, "chunk end") || line[0] != '\0')
            malformed("chunk data not followed by CRLF");
    }
    /* Trailer fields, if any, then the final blank line. */
    for (int n = 0;; n++) {
        if (!read_line(conn, line, "trailer line"))
            malformed("the connection closed inside the trailer");
        if (line[0] == '\0')
            return;
        if (n == MAX_HEADERS)
            malformed("too many trailer lines");
        fprintf(stderr, "%s\n", line);
    }
}

/* ---- connecting and asking ---------------------------------------------- */

/* What the command line asks for. */
struct config {
    const char *out_file; /* NULL: stdout */
    long timeout_ms;
    const char *cacert; /* NULL: the system's CA store */
    bool insecure;
    const char *url;
};

static void parse_args(int argc, char **argv, struct config *cf)
{
    static const struct option long_opts[] = {{"help", no_argument, NULL, 'h'},
                                              {"cacert", required_argument, NULL, 'C'},
                                              {"insecure", no_argument, NULL, 'k'},
                                              {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "ho:t:k", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            exit(0);
        case 'o':
            cf->out_file = optarg;
            break;
        case 't': {
            char *end;
            errno = 0;
            cf->timeout_ms = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || cf->timeout_ms < 1 || cf->timeout_ms > INT_MAX)
                usage_error("bad timeout '%s' (expected milliseconds > 0)", optarg);
            break;
        }
        case 'C':
            cf->cacert = optarg;
            break;
        case 'k':
            cf->insecure = true;
            break;
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (argc - optind != 1)
        usage_error("%s", argc == optind ? "no URL given" : "more than one URL given");
    cf->url = argv[optind];
}

/*
 * https:// is HTTP inside TLS. tcpkit_connect() runs the TLS handshake
 * right after TCP's when the options carry a TLS configuration, and checks
 * two things by default:
 *   - the server's certificate chain leads to an authority we trust: the
 *     system's CA store, or the one in --cacert (a company or test CA);
 *   - the certificate was issued for the host in the URL. Without this check
 *     any valid certificate, for any site, would be accepted.
 * A failed check fails the connect with TCPKIT_ECERT and the reason, e.g.
 * "http-get: connect example.com:443: certificate has expired": we exit 1
 * without sending a byte of the request.
 */
static void tls_options(tcpkit_opts *opts, const struct config *cf)
{
    tcpkit_tls *tls;
    if (tcpkit_tls_new(&tls) != TCPKIT_OK)
        die_tk(); /* e.g. "TLS is not supported by this build" */
    if (cf->cacert != NULL && tcpkit_tls_set_ca_file(tls, cf->cacert) != TCPKIT_OK)
        die_tk();
    if (cf->insecure) {
        /* Still encrypted, but to whom? Anyone on the path can pose as the
         * server. Say so every time. */
        fputs("http-get: warning: --insecure: the server's certificate is not checked\n", stderr);
        tcpkit_tls_set_insecure_skip_verify(tls, true);
    }
    tcpkit_opts_set_tls(opts, tls); /* the options keep their own reference */
    tcpkit_tls_free(tls);
}

/* Connects to the URL's host, with every wait bounded: a server that
 * accepts and then says nothing must not hang us forever. */
static tcpkit_conn *connect_to(const struct url *url, const struct config *cf)
{
    tcpkit_opts *opts;
    if (tcpkit_opts_new(&opts) != TCPKIT_OK)
        die_tk();
    tcpkit_opts_set_connect_timeout(opts, (int)cf->timeout_ms);
    tcpkit_opts_set_io_timeout(opts, (int)cf->timeout_ms);
    if (url->tls)
        tls_options(opts, cf);
    tcpkit_conn *conn;
    tcpkit_err err = tcpkit_connect(&conn, url->host, url->port, opts);
    tcpkit_opts_free(opts);
    if (err != TCPKIT_OK)
        die_tk();
    return conn;
}

/* The request. "Connection: close" asks the server to close after the
 * response, so end of stream is a valid end of the body too. */
static void send_request(tcpkit_conn *conn, const struct url *url)
{
    size_t cap = url->path_len + strlen(url->authority) + 200;
    char *req = malloc(cap);
    if (req == NULL)
        die("request", "out of memory");
    int n = snprintf(req, cap,
                     "GET %s%.*s HTTP/1.1\r\nHost: %s\r\nUser-Agent: libtcpkit-http-get/%s\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     url->slash, (int)url->path_len, url->path, url->authority, tcpkit_version());
    tcpkit_err err = tcpkit_send_all(conn, req, (size_t)n, NULL);
    free(req);
    if (err != TCPKIT_OK)
        die_tk();
}

int main(int argc, char **argv)
{
    struct config cf = {.timeout_ms = DEFAULT_TIMEOUT_MS};
    parse_args(argc, argv, &cf);

    struct url url;
    const char *why = parse_url(cf.url, &url);
    if (why != NULL) {
        fprintf(stderr, "http-get: %s: %s\n", cf.url, why);
        return 2;
    }

    body_out = stdout;
    if (cf.out_file != NULL) {
        body_out = fopen(cf.out_file, "wb");
        if (body_out == NULL)
            die(cf.out_file, strerror(errno));
        body_name = cf.out_file;
    }

    tcpkit_conn *conn = connect_to(&url, &cf);
    send_request(conn, &url);

    /* The head. 1xx responses (e.g. "103 Early Hints") are only interim:
     * the real response follows them. */
    struct head head;
    read_head(conn, &head, true);
    for (int i = 0; head.status >= 100 && head.status < 200 && head.status != 101; i++) {
        if (i == MAX_INTERIM)
            malformed("too many interim (1xx) responses");
        read_head(conn, &head, false);
    }

    /* The body; how it ends is decided by RFC 9112, section 6.3. */
    if (head.status == 204 || head.status == 304) {
        /* no body, whatever the headers say */
    } else if (head.chunked) {
        copy_chunked(conn);
    } else if (head.has_length && !head.other_encoding) {
        copy_body(conn, head.length, false);
    } else {
        copy_body(conn, 0, true); /* until the server closes */
    }

    tcpkit_close(conn);
    if (fflush(body_out) != 0 || (body_out != stdout && fclose(body_out) != 0))
        die(body_name, strerror(errno));
    return 0;
}

/* ==== Appendix: taking the URL apart ======================================
 *
 * Nothing here touches the network. It is careful string handling: the URL
 * comes from the user, and what we copy from it ends up in our request. */

/* Splits an http:// or https:// URL; on failure returns why (a static
 * string). */
static const char *parse_url(const char *s, struct url *u)
{
    u->tls = strncasecmp(s, "https://", 8) == 0;
    if (!u->tls && strncasecmp(s, "http://", 7) != 0)
        return "only http:// and https:// URLs are supported";
    /* Spaces or control bytes would end up in our request line: a URL with
     * "\r\n" in it could add headers of its own ("request splitting"). */
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "URL contains spaces or control characters";

    const char *auth = s + (u->tls ? 8 : 7);
    size_t auth_len = strcspn(auth, "/?#");
    const char *rest = auth + auth_len;
    if (memchr(auth, '@', auth_len))
        return "user names and passwords in URLs are not supported";

    const char *host = auth, *colon;
    size_t host_len;
    bool bracketed = auth_len > 0 && auth[0] == '[';
    if (bracketed) { /* [IPv6]: the colons inside belong to the address */
        const char *close = memchr(auth, ']', auth_len);
        if (close == NULL)
            return "'[' without ']' in the host";
        host = auth + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
        if (colon != rest && *colon != ':')
            return "unexpected characters after ']'";
        if (memchr(host, ':', host_len) == NULL)
            return "brackets are only for IPv6 addresses";
    } else {
        colon = memchr(auth, ':', auth_len);
        if (colon == NULL)
            colon = rest;
        host_len = (size_t)(colon - host);
        if (colon != rest && memchr(colon + 1, ':', (size_t)(rest - colon - 1)))
            return "IPv6 addresses must be in brackets: http://[::1]:8080/";
        if (memchr(host, '[', host_len) || memchr(host, ']', host_len))
            return "'[' or ']' in the host name";
    }
    if (host_len == 0)
        return "no host in URL";
    if (host_len >= sizeof u->host)
        return "host name too long";
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';

    /* ":port" - decimal, 1-65535; "host:" with an empty port means the
     * scheme's default, 80 for http and 443 for https. */
    long default_port = u->tls ? 443 : 80;
    long port = default_port;
    if (colon != rest && colon + 1 != rest) {
        port = 0;
        for (const char *p = colon + 1; p < rest; p++) {
            if (!isdigit((unsigned char)*p))
                return "bad port in URL";
            port = port * 10 + (*p - '0');
            if (port > 65535)
                return "bad port in URL";
        }
        if (port == 0)
            return "bad port in URL";
    }
    snprintf(u->port, sizeof u->port, "%u", (unsigned)port & 0xffff);

    /* The Host header names the server as the URL did; the port only when
     * it is not the default (RFC 9110, section 7.2). */
    bool show_port = port != default_port;
    snprintf(u->authority, sizeof u->authority, "%s%s%s%s%s", bracketed ? "[" : "", u->host,
             bracketed ? "]" : "", show_port ? ":" : "", show_port ? u->port : "");

    /* The path (with any ?query) is sent as it is; the #fragment is not. */
    u->slash = *rest == '/' ? "" : "/";
    u->path = rest;
    u->path_len = strcspn(rest, "#");
    return NULL;
}
