/* hs_peer.c -- starting the test homeserver (mr-test-homeserver) from tests. */
#include "hs_peer.h"

#include <jansson.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"

#define START_TIMEOUT_MS 15000

/* The URL from the log's "listening on <url>" line, once it is there. */
static bool read_url(const char *log, char *url, size_t cap)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, "listening on ", 13) != 0 || !strchr(line, '\n'))
            continue;
        line[strcspn(line, "\n")] = '\0';
        found = snprintf(url, cap, "%s", line + 13) < (int)cap;
    }
    fclose(f);
    return found;
}

mr_code mr_hs_peer_start(const mr_hs_peer_opts *opts, mr_hs_peer *hs, mr_err *err)
{
    static const mr_hs_peer_opts none = {0};
    opts = opts ? opts : &none;
    memset(hs, 0, sizeof *hs);
    mr_code rc = mr_tp_mkdtemp("mr-hs", hs->dir, sizeof hs->dir, err);
    if (rc != MR_OK)
        return rc;
    snprintf(hs->log, sizeof hs->log, "%s/homeserver.log", hs->dir);
    char *argv[24], uses[16];
    size_t n = 0;
    argv[n++] = MR_HS_BINARY;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--server-name";
    argv[n++] = (char *)(opts->server_name ? opts->server_name : "localhost");
    if (opts->registration_token) {
        argv[n++] = "--registration-token";
        argv[n++] = (char *)opts->registration_token;
    }
    if (opts->registration_token_uses) {
        snprintf(uses, sizeof uses, "%d", opts->registration_token_uses);
        argv[n++] = "--registration-token-uses";
        argv[n++] = uses;
    }
    if (opts->registration_token_expired)
        argv[n++] = "--registration-token-expired";
    if (opts->registration_rate_limit)
        argv[n++] = "--registration-rate-limit";
    if (opts->shared_secret) {
        argv[n++] = "--shared-secret";
        argv[n++] = (char *)opts->shared_secret;
    }
    if (opts->open_registration)
        argv[n++] = "--open-registration";
    if (opts->appservice_token) {
        argv[n++] = "--appservice-token";
        argv[n++] = (char *)opts->appservice_token;
    }
    argv[n] = NULL;
    if ((rc = mr_tp_spawn(argv, hs->log, &hs->pid, err)) != MR_OK)
        return rc;
    for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
        if (read_url(hs->log, hs->url, sizeof hs->url)) {
            const char *colon = strrchr(hs->url, ':');
            hs->port = colon ? atoi(colon + 1) : 0;
            return MR_OK;
        }
        int st;
        if (waitpid(hs->pid, &st, WNOHANG) == hs->pid) {
            hs->pid = 0;
            return mr_err_set(err, MR_EUNAVAIL, "mr-test-homeserver exited at start; see %s",
                              hs->log);
        }
        usleep(10000);
    }
    mr_tp_kill_wait(hs->pid, SIGKILL, NULL, NULL);
    hs->pid = 0;
    return mr_err_set(err, MR_EUNAVAIL, "mr-test-homeserver printed no URL within %d ms; see %s",
                      START_TIMEOUT_MS, hs->log);
}

mr_code mr_hs_peer_stop(mr_hs_peer *hs, mr_err *err)
{
    mr_code rc = MR_OK;
    if (hs->pid > 0) {
        int st = 0;
        rc = mr_tp_kill_wait(hs->pid, SIGTERM, &st, err);
        hs->pid = 0;
        if (rc == MR_OK && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            /* Keep the log for whoever reads the failure. */
            return mr_err_set(err, MR_EINTERNAL, "mr-test-homeserver did not exit cleanly "
                              "(status %d); see %s", st, hs->log);
        }
    }
    if (rc == MR_OK && hs->dir[0])
        mr_tp_rmtree(hs->dir, NULL);
    return rc;
}

mr_code mr_hs_peer_has_user(const mr_hs_peer *hs, const char *user_id, bool *exists, mr_err *err)
{
    *exists = false;
    char *body = NULL;
    long status = mr_tp_http_get(hs->port, "/_test/state", &body);
    json_t *state = status == 200 ? json_loads(body, 0, NULL) : NULL;
    free(body);
    if (!state)
        return mr_err_set(err, MR_EIO, "GET %s/_test/state: HTTP %ld, no JSON", hs->url, status);
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(state, "users"), i, u)
        *exists = *exists || strcmp(json_string_value(u), user_id) == 0;
    json_decref(state);
    return MR_OK;
}

bool mr_hs_peer_sync_typing(json_t *sync, const char *room_id, const char *user_id)
{
    json_t *events = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
        sync, "rooms"), "join"), room_id), "ephemeral"), "events");
    bool typing = false;
    size_t i, j;
    json_t *ev, *uid;
    json_array_foreach(events, i, ev)
        json_array_foreach(json_object_get(json_object_get(ev, "content"), "user_ids"), j, uid)
            typing = typing || (json_is_string(uid) && strcmp(json_string_value(uid), user_id) == 0);
    return typing;
}
