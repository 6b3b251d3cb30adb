/*
 * The benchmark's limit for a read: GET /api/v1/images?limit=N written in C, the way the product would be
 * written by hand with the same libraries. Per request it does what the seed's listing does:
 *
 *   1. the session cookie's token → its SHA-256 (libsodium) → one Redis round trip (HMGET session:<hex>
 *      user created) for the owner;
 *   2. the user row by a libpq prepared statement (a deleted account is refused, 401);
 *   3. the newest N+1 images of that user by a second prepared statement;
 *   4. the page as JSON written by hand into one buffer: the same keys, order and values as Atelier's
 *      (items with their media URLs, ISO 8601 times, next_cursor as base64url of "created_at|id").
 *
 * It reads DATABASE_URL, REDIS_URL (redis://host:port) and MEDIA_URL_PREFIX (/media/) from the
 * environment, runs one request at a time from the listening socket on fd 0 like an Atelier function, and
 * is served by scripts/bench.sh behind the same nginx with the same number of processes as the product's
 * generate function, against the same bench user.
 *
 *   cc -O2 bench/gallery.c -I/usr/include/postgresql -lfcgi -lpq -lhiredis -lsodium -o gallery
 */
#include <fcgiapp.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_SQL \
    "SELECT id, email, username, verified, is_admin, premium_until FROM users WHERE id = $1"
#define PAGE_SQL \
    "SELECT id, storage_key, thumbnail_key, prompt, style, colour, kind, source_image_id, width, height, " \
    "model, seed, status, generation_id, created_at FROM images WHERE user_id = $1 " \
    "ORDER BY created_at DESC, id DESC LIMIT $2"

enum { C_ID, C_STORAGE, C_THUMB, C_PROMPT, C_STYLE, C_COLOUR, C_KIND, C_SOURCE, C_WIDTH, C_HEIGHT,
       C_MODEL, C_SEED, C_STATUS, C_GENERATION, C_CREATED };

static PGconn *db;
static redisContext *redis;
static const char *database_url, *media_prefix;
static char redis_host[256] = "127.0.0.1";
static int redis_port = 6379;

/* A growable output buffer: the whole response is written here, then sent with one FCGX_PutStr. */
typedef struct { char *data; size_t length, capacity; } buffer;

static void put(buffer *b, const char *bytes, size_t n) {
    if (b->length + n > b->capacity) {
        while (b->length + n > b->capacity) b->capacity = b->capacity ? b->capacity * 2 : 8192;
        b->data = realloc(b->data, b->capacity);
        if (!b->data) abort();
    }
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
}
static void puts_(buffer *b, const char *text) { put(b, text, strlen(text)); }

static void put_string(buffer *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(b, run, (size_t)(s - run));
        char escape[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"': put(b, "\\\"", 2); break;
        case '\\': put(b, "\\\\", 2); break;
        case '\n': put(b, "\\n", 2); break;
        case '\r': put(b, "\\r", 2); break;
        case '\t': put(b, "\\t", 2); break;
        default: put(b, escape, 6);
        }
        run = s + 1;
    }
    put(b, run, (size_t)(s - run));
    put(b, "\"", 1);
}

/* A nullable text column as a JSON string or null. */
static void put_text(buffer *b, PGresult *r, int row, int column) {
    if (PQgetisnull(r, row, column)) puts_(b, "null");
    else put_string(b, PQgetvalue(r, row, column));
}
static void put_number(buffer *b, PGresult *r, int row, int column) {
    if (PQgetisnull(r, row, column)) puts_(b, "null");
    else puts_(b, PQgetvalue(r, row, column));
}
static void put_url(buffer *b, PGresult *r, int row, int column) {
    if (PQgetisnull(r, row, column)) { puts_(b, "null"); return; }
    char url[512];
    snprintf(url, sizeof url, "%s%s", media_prefix, PQgetvalue(r, row, column));
    put_string(b, url);
}
/* "2026-11-25 16:50:51.123456+00" (UTC, ISO DateStyle) → "2026-11-25T16:50:51Z". */
static void put_time(buffer *b, const char *text) {
    char iso[24];
    memcpy(iso, text, 19);
    iso[10] = 'T';
    iso[19] = 'Z';
    put(b, "\"", 1);
    put(b, iso, 20);
    put(b, "\"", 1);
}

static int connect_all(void) {
    if (!db || PQstatus(db) != CONNECTION_OK) {
        if (db) PQfinish(db);
        db = PQconnectdb(database_url);
        if (PQstatus(db) != CONNECTION_OK) return -1;
        PQclear(PQexec(db, "SET TimeZone = 'UTC'"));
        PGresult *r = PQprepare(db, "user", USER_SQL, 1, NULL);
        PQclear(r);
        r = PQprepare(db, "page", PAGE_SQL, 2, NULL);
        PQclear(r);
    }
    if (!redis || redis->err) {
        if (redis) redisFree(redis);
        redis = redisConnect(redis_host, redis_port);
        if (!redis || redis->err) return -1;
    }
    return 0;
}

static void respond(FCGX_Stream *out, const char *status, buffer *body) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "Status: %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                     "Content-Length: %zu\r\n\r\n", status, body->length);
    FCGX_PutStr(head, n, out);
    FCGX_PutStr(body->data, (int)body->length, out);
}

static void error(FCGX_Stream *out, const char *status, const char *code, const char *message) {
    buffer b = {0};
    puts_(&b, "{\"error\":{\"code\":\"");
    puts_(&b, code);
    puts_(&b, "\",\"message\":\"");
    puts_(&b, message);
    puts_(&b, "\"}}");
    respond(out, status, &b);
    free(b.data);
}

static void serve(FCGX_Request *request, buffer *b) {
    FCGX_Stream *out = request->out;
    if (connect_all() != 0) { error(out, "503 Service Unavailable", "unavailable", "A dependency is down."); return; }

    /* The session token from the cookie. */
    const char *cookie = FCGX_GetParam("HTTP_COOKIE", request->envp);
    const char *found = cookie ? strstr(cookie, "atelier_session=") : NULL;
    if (!found) { error(out, "401 Unauthorized", "not_authenticated", "Log in to continue."); return; }
    found += strlen("atelier_session=");
    size_t token_length = strcspn(found, "; ");
    if (token_length == 0 || token_length > 128) { error(out, "401 Unauthorized", "not_authenticated", "Log in to continue."); return; }
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)found, token_length);
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);

    redisReply *reply = redisCommand(redis, "HMGET session:%s user created", hex);
    if (!reply) { error(out, "503 Service Unavailable", "unavailable", "Redis is down."); return; }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(reply);
        error(out, "401 Unauthorized", "not_authenticated", "Log in to continue.");
        return;
    }
    char user_id[64];
    snprintf(user_id, sizeof user_id, "%s", reply->element[0]->str);
    freeReplyObject(reply);

    int limit = 24;
    const char *query = FCGX_GetParam("QUERY_STRING", request->envp);
    const char *limit_text = query ? strstr(query, "limit=") : NULL;
    if (limit_text) {
        limit = atoi(limit_text + 6);
        if (limit < 1 || limit > 100) { error(out, "400 Bad Request", "invalid_limit", "limit must be a whole number from 1 to 100."); return; }
    }

    const char *user_params[1] = {user_id};
    PGresult *user = PQexecPrepared(db, "user", 1, user_params, NULL, NULL, 0);
    if (PQresultStatus(user) != PGRES_TUPLES_OK) { PQclear(user); error(out, "503 Service Unavailable", "unavailable", "PostgreSQL is down."); return; }
    int exists = PQntuples(user) == 1;
    PQclear(user);
    if (!exists) { error(out, "401 Unauthorized", "not_authenticated", "Log in to continue."); return; }

    char fetch[16];
    snprintf(fetch, sizeof fetch, "%d", limit + 1);
    const char *page_params[2] = {user_id, fetch};
    PGresult *page = PQexecPrepared(db, "page", 2, page_params, NULL, NULL, 0);
    if (PQresultStatus(page) != PGRES_TUPLES_OK) { PQclear(page); error(out, "503 Service Unavailable", "unavailable", "PostgreSQL is down."); return; }

    int rows = PQntuples(page), shown = rows > limit ? limit : rows;
    b->length = 0;
    puts_(b, "{\"items\":[");
    for (int i = 0; i < shown; i++) {
        if (i) put(b, ",", 1);
        puts_(b, "{\"colour\":"); put_text(b, page, i, C_COLOUR);
        puts_(b, ",\"created_at\":"); put_time(b, PQgetvalue(page, i, C_CREATED));
        puts_(b, ",\"generation_id\":"); put_text(b, page, i, C_GENERATION);
        puts_(b, ",\"height\":"); put_number(b, page, i, C_HEIGHT);
        puts_(b, ",\"id\":"); put_text(b, page, i, C_ID);
        puts_(b, ",\"kind\":"); put_text(b, page, i, C_KIND);
        puts_(b, ",\"model\":"); put_text(b, page, i, C_MODEL);
        puts_(b, ",\"prompt\":"); put_text(b, page, i, C_PROMPT);
        puts_(b, ",\"seed\":"); put_number(b, page, i, C_SEED);
        puts_(b, ",\"source_image_id\":"); put_text(b, page, i, C_SOURCE);
        puts_(b, ",\"status\":"); put_text(b, page, i, C_STATUS);
        puts_(b, ",\"style\":"); put_text(b, page, i, C_STYLE);
        puts_(b, ",\"thumbnail_url\":"); put_url(b, page, i, C_THUMB);
        puts_(b, ",\"url\":"); put_url(b, page, i, C_STORAGE);
        puts_(b, ",\"width\":"); put_number(b, page, i, C_WIDTH);
        put(b, "}", 1);
    }
    puts_(b, "],\"next_cursor\":");
    if (rows > limit) {
        char cursor_text[128], cursor[192];
        int n = snprintf(cursor_text, sizeof cursor_text, "%s|%s", PQgetvalue(page, shown - 1, C_CREATED),
                         PQgetvalue(page, shown - 1, C_ID));
        sodium_bin2base64(cursor, sizeof cursor, (const unsigned char *)cursor_text, (size_t)n,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        put_string(b, cursor);
    } else {
        puts_(b, "null");
    }
    put(b, "}", 1);
    PQclear(page);
    respond(out, "200 OK", b);
}

int main(void) {
    database_url = getenv("DATABASE_URL");
    media_prefix = getenv("MEDIA_URL_PREFIX") ? getenv("MEDIA_URL_PREFIX") : "/media/";
    const char *redis_url = getenv("REDIS_URL");
    if (!database_url || !redis_url) { fprintf(stderr, "gallery: DATABASE_URL and REDIS_URL are required\n"); return 78; }
    if (sscanf(redis_url, "redis://%255[^:/]:%d", redis_host, &redis_port) < 1) { fprintf(stderr, "gallery: bad REDIS_URL\n"); return 78; }
    if (sodium_init() < 0) return 1;

    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0) return 1;
    FCGX_Request request;
    if (FCGX_InitRequest(&request, 0, 0) != 0) return 1;
    buffer body = {0};
    while (FCGX_Accept_r(&request) >= 0) {
        serve(&request, &body);
        FCGX_Finish_r(&request);
    }
    return 0;
}
