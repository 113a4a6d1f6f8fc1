/* doctor_matrix.c -- `mindroom doctor`'s Matrix checks: the homeserver answers, the ways it
 * offers to register accounts, and whether the registration settings fit one of them, in the
 * order the gateway picks its registration method. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "doctor.h"
#include "mindroom/ids.h"
#include "mindroom/json.h"
#include "mindroom/matrix.h"
#include "mindroom/str.h"

/* A probe waits this long: the doctor reports, it does not wait for a server to come up. */
#define PROBE_TIMEOUT_MS 10000L
#define PROBE_CONNECT_MS 5000L

/* What the homeserver offers to whoever registers accounts. */
typedef struct offers {
    bool shared_secret;     /* POST /_synapse/admin/v1/register got past "not enabled" */
    char shared_secret_why[MR_ERR_MSG_MAX];
    json_t *flows;          /* POST /register's flows: [[stage, ...], ...]; NULL when none came */
    char register_why[MR_ERR_MSG_MAX];
    json_t *login_types;    /* GET /login's flow types; NULL when none came */
} offers;

static void offers_free(offers *o)
{
    json_decref(o->flows);
    json_decref(o->login_types);
}

/* "M_FORBIDDEN: Registration has been disabled" from the last Matrix reply, or its status. */
static void last_reply(const mr_matrix *m, const mr_err *err, char *out, size_t cap)
{
    const mr_matrix_status *st = mr_matrix_last(m);
    if (st->errcode[0])
        snprintf(out, cap, "HTTP %ld %s: %s", st->status, st->errcode, st->error);
    else
        snprintf(out, cap, "%s", err->msg);
}

/* Synapse hands out a nonce even with shared-secret registration off; only a POST tells, and
 * its first check is whether the feature is on (UserRegisterServlet.on_POST). An empty body
 * registers nobody: on, the next check refuses it for the missing nonce. */
static void probe_shared_secret(mr_matrix *m, offers *o)
{
    json_t *empty = json_object(), *reply = NULL;
    mr_err err = {0};
    mr_code rc = empty ? mr_matrix_request(m, "admin_register", "POST", "/_synapse/admin/v1/register",
                                           empty, false, &reply, &err)
                       : mr_err_set(&err, MR_ENOMEM, "out of memory");
    const mr_matrix_status *st = mr_matrix_last(m);
    o->shared_secret = rc != MR_OK && st->status == 400 && strstr(st->error, "nonce") != NULL;
    if (!o->shared_secret)
        last_reply(m, &err, o->shared_secret_why, sizeof o->shared_secret_why);
    json_decref(empty);
    json_decref(reply);
}

static bool all_strings(const json_t *array)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
        if (!json_is_string(v))
            return false;
    return json_is_array(array);
}

/* The stages of each flow, when the reply lists them as the spec says. */
static json_t *stages_of(json_t *reply)
{
    return mr_json_array_pluck(json_object_get(reply, "flows"), "stages", all_strings);
}

/* POST /register with an empty body: a server that registers answers 401 with its flows. It
 * starts a user-interactive session and nothing more. */
static void probe_register(mr_matrix *m, offers *o)
{
    json_t *challenge = NULL;
    mr_err err = {0};
    if (mr_matrix_register_flows(m, &challenge, &err) == MR_OK)
        o->flows = stages_of(challenge);
    else
        last_reply(m, &err, o->register_why, sizeof o->register_why);
    json_decref(challenge);
}

static void probe_login(mr_matrix *m, offers *o)
{
    json_t *reply = NULL;
    if (mr_matrix_request(m, "login_flows", "GET", "/_matrix/client/v3/login", NULL, true, &reply,
                          NULL) != MR_OK) {
        json_decref(reply);
        return;
    }
    o->login_types = json_array();
    size_t i;
    json_t *flow;
    json_array_foreach(json_object_get(reply, "flows"), i, flow) {
        json_t *type = json_object_get(flow, "type");
        if (json_is_string(type))
            json_array_append(o->login_types, type);
    }
    json_decref(reply);
}

/* "[a, b] or [c]": the flows as a person reads them. */
static void put_flows(mr_strbuf *b, json_t *flows)
{
    size_t i, j;
    json_t *flow, *stage;
    json_array_foreach(flows, i, flow) {
        mr_strbuf_puts(b, i ? " or [" : "[");
        json_array_foreach(flow, j, stage) {
            mr_strbuf_puts(b, j ? ", " : "");
            mr_strbuf_puts(b, json_string_value(stage));
        }
        mr_strbuf_puts(b, "]");
    }
}

static void report_offers(doctor *d, const char *hs, const offers *o)
{
    mr_strbuf b = {0};
    if (o->shared_secret)
        mr_strbuf_puts(&b, "shared-secret registration (Synapse admin API); ");
    if (o->flows && json_array_size(o->flows)) {
        mr_strbuf_puts(&b, "POST /register with ");
        put_flows(&b, o->flows);
        mr_strbuf_puts(&b, "; ");
    }
    if (mr_json_array_has(o->login_types, "m.login.application_service"))
        mr_strbuf_puts(&b, "application-service login; ");
    if (b.failed) {
        doctor_line(d, DOCTOR_FAIL, "registration on %s: out of memory listing what it offers", hs);
    } else if (b.len) {
        b.s[b.len - 2] = '\0';
        doctor_line(d, DOCTOR_OK, "registration on %s: offers %s", hs, b.s);
    } else {
        doctor_line(d, DOCTOR_WARN, "registration on %s: offers none (shared secret: %s; POST "
                    "/register: %s); accounts must exist already", hs, o->shared_secret_why,
                    o->register_why);
    }
    free(b.s);
}

/* A flow is within reach when each of its stages is: m.login.dummy always, the token stage
 * when a token is set. */
static bool flow_completable(json_t *flows, bool have_token)
{
    size_t i, j;
    json_t *flow, *stage;
    json_array_foreach(flows, i, flow) {
        bool ok = true;
        json_array_foreach(flow, j, stage) {
            const char *s = json_string_value(stage);
            ok &= strcmp(s, "m.login.dummy") == 0 ||
                  (have_token && strcmp(s, "m.login.registration_token") == 0);
        }
        if (ok)
            return true;
    }
    return false;
}

/* Set as itself or as KEY_FILE, as the gateway reads secrets. */
static bool secret_set(const doctor *d, const char *key)
{
    char file_key[96];
    snprintf(file_key, sizeof file_key, "%s_FILE", key);
    return mr_cli_setting(d->env, key) || mr_cli_setting(d->env, file_key);
}

/* Asks the server whether the token is still good (Synapse answers on this endpoint since
 * v1.42). Its words are reported, never the request: the URL carries the token. */
static void check_token_valid(doctor *d, mr_matrix *m)
{
    const char *token = mr_cli_setting(d->env, "MATRIX_REGISTRATION_TOKEN");
    char *q = token ? mr_matrix_escape(token) : NULL;
    char *path = q ? mr_str_printf("/_matrix/client/v1/register/m.login.registration_token/"
                                   "validity?token=%s", q)
                   : NULL;
    json_t *reply = NULL;
    if (path && mr_matrix_request(m, "token_validity", "GET", path, NULL, true, &reply, NULL) == MR_OK &&
        json_is_false(json_object_get(reply, "valid")))
        doctor_line(d, DOCTOR_FAIL, "registration: the homeserver says MATRIX_REGISTRATION_TOKEN is "
                    "not valid (mistyped, used up or expired): ask the admin for a new one");
    json_decref(reply);
    free(path);
    free(q);
}

static void check_with_token(doctor *d, mr_matrix *m, const char *hs, const offers *o)
{
    if (!flow_completable(o->flows, true)) {
        mr_strbuf flows = {0};
        put_flows(&flows, o->flows);
        doctor_line(d, DOCTOR_FAIL, "registration: MATRIX_REGISTRATION_TOKEN is set, but %s offers no "
                    "flow it completes (POST /register: %s%s): enable registration_requires_token "
                    "on the server, or use MATRIX_REGISTRATION_SHARED_SECRET", hs,
                    o->flows ? "only " : o->register_why, o->flows && flows.s ? flows.s : "");
        free(flows.s);
        return;
    }
    size_t before = d->counts[DOCTOR_FAIL];
    check_token_valid(d, m);
    if (d->counts[DOCTOR_FAIL] == before)
        doctor_line(d, DOCTOR_OK, "registration: agents register with MATRIX_REGISTRATION_TOKEN on %s",
                    hs);
}

static void check_appservice(doctor *d, const char *hs, const offers *o)
{
    if (!secret_set(d, "MATRIX_APPSERVICE_TOKEN"))
        doctor_line(d, DOCTOR_FAIL, "registration: MATRIX_MANAGED_ACCOUNT_AUTH is appservice, but "
                    "MATRIX_APPSERVICE_TOKEN (or MATRIX_APPSERVICE_TOKEN_FILE) is not set: set the "
                    "as_token of MindRoom's registration file");
    else if (!mr_json_array_has(o->login_types, "m.login.application_service"))
        doctor_line(d, DOCTOR_FAIL, "registration: MATRIX_MANAGED_ACCOUNT_AUTH is appservice, but %s "
                    "offers no application-service login: add MindRoom's registration file to "
                    "app_service_config_files", hs);
    else
        doctor_line(d, DOCTOR_OK, "registration: agents are application-service users on %s", hs);
}

/* The gateway's order (pairing-and-run.md §3): appservice, provisioning service, shared secret,
 * registration token, open registration. */
static void check_method(doctor *d, mr_matrix *m, const char *hs, const offers *o)
{
    const char *mode = mr_cli_setting(d->env, "MATRIX_MANAGED_ACCOUNT_AUTH");
    const char *prov = mr_cli_setting(d->env, "MINDROOM_PROVISIONING_URL");
    if (mode && strcasecmp(mode, "appservice") == 0) {
        check_appservice(d, hs, o);
    } else if (mode && strcasecmp(mode, "password") != 0) {
        doctor_line(d, DOCTOR_FAIL, "registration: MATRIX_MANAGED_ACCOUNT_AUTH is \"%s\": set password "
                    "or appservice", mode);
    } else if (prov && mr_cli_setting(d->env, "MINDROOM_LOCAL_CLIENT_ID") &&
               secret_set(d, "MINDROOM_LOCAL_CLIENT_SECRET")) {
        doctor_line(d, DOCTOR_OK, "registration: through the provisioning service at %s (paired)", prov);
    } else if (secret_set(d, "MATRIX_REGISTRATION_SHARED_SECRET")) {
        if (o->shared_secret)
            doctor_line(d, DOCTOR_OK, "registration: agents register with "
                        "MATRIX_REGISTRATION_SHARED_SECRET on %s (the secret is checked at the "
                        "first registration)", hs);
        else
            doctor_line(d, DOCTOR_FAIL, "registration: MATRIX_REGISTRATION_SHARED_SECRET is set, but "
                        "%s has shared-secret registration off (%s): set registration_shared_secret "
                        "in its homeserver.yaml, or use MATRIX_REGISTRATION_TOKEN instead",
                        hs, o->shared_secret_why);
    } else if (secret_set(d, "MATRIX_REGISTRATION_TOKEN")) {
        check_with_token(d, m, hs, o);
    } else if (prov) {
        doctor_line(d, DOCTOR_FAIL, "registration: MINDROOM_PROVISIONING_URL is %s, but this install "
                    "is not paired: run `mindroom connect --pair-code ...`, or for your own "
                    "homeserver remove MINDROOM_PROVISIONING_URL and set "
                    "MATRIX_REGISTRATION_SHARED_SECRET or MATRIX_REGISTRATION_TOKEN", prov);
    } else if (o->flows && flow_completable(o->flows, false)) {
        doctor_line(d, DOCTOR_OK, "registration: %s has open registration; agents register without "
                    "a secret", hs);
    } else {
        doctor_line(d, DOCTOR_FAIL, "registration: neither MATRIX_REGISTRATION_SHARED_SECRET nor "
                    "MATRIX_REGISTRATION_TOKEN is set, and %s has no open registration: set the "
                    "one your homeserver allows in %s", hs, d->env_path);
    }
}

/* "r0.0.1 ... v1.11 (12 listed)" */
static void report_versions(doctor *d, const char *hs, json_t *versions)
{
    size_t n = json_array_size(versions);
    const char *first = json_string_value(json_array_get(versions, 0));
    const char *last = json_string_value(json_array_get(versions, n ? n - 1 : 0));
    if (!n || !first || !last)
        doctor_line(d, DOCTOR_FAIL, "homeserver: %s lists no Matrix versions: is MATRIX_HOMESERVER a "
                    "Matrix server?", hs);
    else if (n == 1)
        doctor_line(d, DOCTOR_OK, "homeserver: %s answers; Matrix version %s", hs, first);
    else
        doctor_line(d, DOCTOR_OK, "homeserver: %s answers; Matrix versions %s ... %s (%zu listed)", hs,
                    first, last, n);
}

void doctor_check_matrix(doctor *d)
{
    const char *hs = mr_cli_setting(d->env, "MATRIX_HOMESERVER");
    if (!hs) {
        doctor_line(d, DOCTOR_FAIL, "homeserver: MATRIX_HOMESERVER is not set (environment or %s): set "
                    "it to your homeserver's URL", d->env_path);
        return;
    }
    char host[MR_ID_MAX + 1];
    mr_err err = {0};
    if (mr_id_url_host(hs, host, sizeof host, &err) != MR_OK) {
        doctor_line(d, DOCTOR_FAIL, "homeserver: MATRIX_HOMESERVER: %s", err.msg);
        return;
    }
    const char *name = mr_cli_setting(d->env, "MATRIX_SERVER_NAME");
    if (mr_id_parse_server_name(name ? name : host, NULL, &err) != MR_OK)
        doctor_line(d, DOCTOR_FAIL, "homeserver: %s: %s", name ? "MATRIX_SERVER_NAME" : "MATRIX_HOMESERVER",
                    err.msg);
    mr_matrix_opts mo = {.homeserver = hs, .timeout_ms = PROBE_TIMEOUT_MS,
                         .connect_timeout_ms = PROBE_CONNECT_MS, .max_attempts = 1,
                         .max_rate_limited = 2};
    mr_matrix *m = NULL;
    json_t *versions = NULL;
    mr_code rc = mr_matrix_new(&mo, &m, &err);
    if (rc == MR_OK)
        rc = mr_matrix_versions(m, &versions, &err);
    if (rc != MR_OK) {
        doctor_line(d, DOCTOR_FAIL, "homeserver: %s: check MATRIX_HOMESERVER and that the server runs",
                    err.msg);
    } else {
        report_versions(d, hs, versions);
        offers o = {0};
        probe_shared_secret(m, &o);
        probe_register(m, &o);
        probe_login(m, &o);
        report_offers(d, hs, &o);
        check_method(d, m, hs, &o);
        offers_free(&o);
    }
    json_decref(versions);
    mr_matrix_free(m);
}
