/* given_accounts.c -- accounts an admin already has, handed over in the settings as
 * MATRIX_ACCOUNT_<ENTITY>_USER_ID with _PASSWORD[_FILE] or _ACCESS_TOKEN[_FILE], ENTITY the
 * upper-cased entity name (ROUTER, USER, an agent or team): read and checked before start-up. */
#include "gateway_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/ids.h"

#define PREFIX "MATRIX_ACCOUNT_"

extern char **environ;

/* Every setting of an entity, after its MATRIX_ACCOUNT_<ENTITY> prefix. */
static const char *const suffixes[] = {"_USER_ID", "_PASSWORD", "_PASSWORD_FILE", "_ACCESS_TOKEN",
                                       "_ACCESS_TOKEN_FILE"};

static void wipe(char *s)
{
    if (s)
        memset(s, 0, strlen(s));
    free(s);
}

/* The user ID setting, checked: a Matrix user ID of this homeserver. */
static mr_code given_user_id(gw *g, gw_account *a, const char *key, const char *uid, mr_err *err)
{
    mr_id id;
    mr_err why = {0};
    if (mr_id_parse_user(uid, &id, &why) != MR_OK)
        return mr_err_set(err, MR_EINVAL, "%s is not a Matrix user ID (%s)", key, why.msg);
    /* The gateway logs in on MATRIX_HOMESERVER only, which serves its own users. */
    if (strcmp(id.server, g->s.server_name) != 0)
        return mr_err_set(err, MR_EINVAL, "%s (%s) is not an account of this homeserver, whose "
                          "server name is %s (MATRIX_SERVER_NAME)", key, uid, g->s.server_name);
    if (strlen(uid) >= sizeof a->user_id)
        return mr_err_set(err, MR_EINVAL, "%s is longer than %zu bytes", key, sizeof a->user_id - 1);
    snprintf(a->user_id, sizeof a->user_id, "%s", uid);
    return MR_OK;
}

mr_code gw_given_read(gw *g, gw_account *a, mr_err *err)
{
    size_t n = (size_t)snprintf(a->setting, sizeof a->setting, PREFIX);
    for (const char *e = a->entity; *e && n + 1 < sizeof a->setting; e++)
        a->setting[n++] = (char)toupper((unsigned char)*e);
    a->setting[n] = '\0';
    char uid_key[sizeof a->setting + 16], pw_key[sizeof a->setting + 16],
        token_key[sizeof a->setting + 16];
    snprintf(uid_key, sizeof uid_key, "%s_USER_ID", a->setting);
    snprintf(pw_key, sizeof pw_key, "%s_PASSWORD", a->setting);
    snprintf(token_key, sizeof token_key, "%s_ACCESS_TOKEN", a->setting);
    const char *uid = mr_runtime_setting(g->rt, NULL, uid_key, NULL);
    char *password = NULL, *token = NULL;
    mr_code rc = gw_secret_setting(g->rt, pw_key, &password, err);
    if (rc == MR_OK)
        rc = gw_secret_setting(g->rt, token_key, &token, err);
    if (rc == MR_OK && (uid || password || token)) {
        if (password && token)
            rc = mr_err_set(err, MR_EINVAL, "%s and %s are both set; give only one of them",
                            pw_key, token_key);
        else if (!uid)
            rc = mr_err_set(err, MR_EINVAL, "%s is set without %s; name the account it opens",
                            password ? pw_key : token_key, uid_key);
        else if (!password && !token)
            rc = mr_err_set(err, MR_EINVAL, "%s is set, but neither %s nor %s (or its _FILE "
                            "form); give the one that opens %s", uid_key, pw_key, token_key, uid);
        else if ((rc = given_user_id(g, a, uid_key, uid, err)) == MR_OK) {
            a->given = password ? GW_GIVEN_PASSWORD : GW_GIVEN_TOKEN;
            a->password = password;
            a->token = token;
            return MR_OK;
        }
    }
    wipe(password);
    wipe(token);
    return rc;
}

/* Whether key is one of the settings of a planned account. */
static bool known(const gw *g, const char *key)
{
    for (size_t i = 0; i < g->n_accounts; i++) {
        const char *p = g->accounts[i].setting;
        size_t n = strlen(p);
        if (strncmp(key, p, n) != 0)
            continue;
        for (size_t k = 0; k < sizeof suffixes / sizeof *suffixes; k++)
            if (strcmp(key + n, suffixes[k]) == 0)
                return true;
    }
    return false;
}

static mr_code check_key(const gw *g, const char *key, size_t key_len, const char *value,
                         mr_err *err)
{
    char name[256];
    if (key_len < strlen(PREFIX) || strncmp(key, PREFIX, strlen(PREFIX)) != 0 || !value || !*value)
        return MR_OK;
    snprintf(name, sizeof name, "%.*s", (int)key_len, key);
    if (known(g, name))
        return MR_OK;
    /* A typo would otherwise have the gateway register a new account in its place. */
    return mr_err_set(err, MR_EINVAL, "%s names no account MindRoom manages; existing accounts are "
                      "given as MATRIX_ACCOUNT_<ENTITY>_USER_ID with _PASSWORD[_FILE] or "
                      "_ACCESS_TOKEN[_FILE], ENTITY being ROUTER, USER (mindroom_user) or an agent "
                      "or team name in capitals", name);
}

mr_code gw_given_check_unknown(gw *g, mr_err *err)
{
    mr_code rc = MR_OK;
    for (char **e = environ; rc == MR_OK && e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq)
            rc = check_key(g, *e, (size_t)(eq - *e), eq + 1, err);
    }
    const mr_dotenv *env = &g->rt->env;
    for (size_t i = 0; rc == MR_OK && i < env->len; i++)
        rc = check_key(g, env->entries[i].key, strlen(env->entries[i].key),
                       env->entries[i].value, err);
    return rc;
}
