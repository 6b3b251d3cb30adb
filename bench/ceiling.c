/*
 * The benchmark's ceiling: the least a FastCGI process can do for a request. It answers every request
 * with a fixed JSON body of the shape and size of GET /api/v1/health, with the same headers, one request
 * at a time from the listening socket on fd 0, the way an Atelier function runs under the supervisor.
 * What Atelier's health endpoint falls short of this, through the same nginx with the same number of
 * processes, is the cost of the Swift runtime, routing, and the PostgreSQL and Redis round trips.
 *
 * Started without a socket on fd 0 it answers once as plain CGI, as FunctionRuntime does, so that
 * scripts/bench.sh can time its cold start as a reference too.
 *
 *   cc -O2 bench/ceiling.c -lfcgi -o ceiling
 */
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define BODY "{\"status\":\"ok\",\"database\":\"ok\",\"redis\":\"ok\"}"

int main(void) {
    /* Built once: nothing per request but the FastCGI framing. */
    char response[256];
    int length = snprintf(response, sizeof response,
                          "Status: 200 OK\r\n"
                          "Content-Type: application/json\r\n"
                          "Cache-Control: no-store\r\n"
                          "Content-Length: %zu\r\n"
                          "\r\n" BODY,
                          sizeof BODY - 1);
    if (length < 0 || (size_t)length >= sizeof response) return 1;

    if (FCGX_IsCGI()) {
        return fwrite(response, 1, (size_t)length, stdout) == (size_t)length ? 0 : 1;
    }

    /* A client that goes away mid-response must not end the process. */
    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0) return 1;
    FCGX_Request request;
    if (FCGX_InitRequest(&request, 0, 0) != 0) return 1;
    while (FCGX_Accept_r(&request) >= 0) {
        FCGX_PutStr(response, length, request.out);
        FCGX_Finish_r(&request);
    }
    return 0;
}
