/* settings.c -- resolving a runtime's settings: flag > environment > .env > default, validated. */
#include "runtime_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/fsutil.h"

/* The name a message should give for a setting: the flag when the flag decided, else the
 * variable a person would set. */
static const char *source_name(const char *flag, const char *flag_name, const char *key)
{
    return flag ? flag_name : key;
}

static mr_code dup_into(char **dst, const char *src, const char *what, mr_err *err)
{
    *dst = strdup(src);
    return *dst ? MR_OK : mr_err_set(err, MR_ENOMEM, "%s: out of memory", what);
}

static mr_code resolve_config_path(const mr_runtime_opts *o, mr_runtime_settings *s, mr_err *err)
{
    const char *name = source_name(o->config_path, "--config", "MINDROOM_CONFIG_PATH");
    char found[PATH_MAX];
    if (o->config_path) {
        if (!*o->config_path)
            return mr_err_set(err, MR_EINVAL, "--config: empty path");
        if (!mr_fs_exists(o->config_path))
            return mr_err_set(err, MR_EINVAL, "--config: %s does not exist", o->config_path);
        snprintf(found, sizeof found, "%s", o->config_path);
    } else {
        mr_code rc = mr_config_find_path(found, sizeof found, true, err);
        if (rc != MR_OK) {
            if (strncmp(err->msg, name, strlen(name)) != 0)
                mr_err_prefix(err, "%s", name);
            return MR_EINVAL;
        }
    }
    /* Absolute, so a reload reads the same file whatever the working directory is then. */
    char abs[PATH_MAX];
    if (!realpath(found, abs))
        return mr_err_errno(err, MR_EINVAL, errno, "%s: %s", name, found);
    char dir[PATH_MAX];
    mr_fs_dirname(abs, dir, sizeof dir);
    char env_path[PATH_MAX + 8];
    snprintf(env_path, sizeof env_path, "%s/.env", dir);
    mr_code rc = dup_into(&s->config_path, abs, name, err);
    return rc != MR_OK ? rc : dup_into(&s->env_path, env_path, name, err);
}

static mr_code resolve_logging(const mr_runtime_opts *o, mr_runtime *rt, mr_err *err)
{
    mr_runtime_settings *s = &rt->settings;
    const char *level = mr_runtime_setting(rt, o->log_level, "LOG_LEVEL", "info");
    if (mr_log_level_parse(level, &s->log_level, err) != MR_OK) {
        mr_err_prefix(err, "%s", source_name(o->log_level, "--log-level", "LOG_LEVEL"));
        return MR_EINVAL;
    }
    const char *format = mr_runtime_setting(rt, o->log_format, "LOG_FORMAT", "human");
    if (mr_log_format_parse(format, &s->log_format, err) != MR_OK) {
        mr_err_prefix(err, "%s", source_name(o->log_format, "--log-format", "LOG_FORMAT"));
        return MR_EINVAL;
    }
    mr_log_configure(s->log_level, s->log_format, NULL);
    return MR_OK;
}

static mr_code resolve_storage(const mr_runtime_opts *o, mr_runtime *rt, mr_err *err)
{
    mr_runtime_settings *s = &rt->settings;
    const char *name = source_name(o->storage_path, "--storage-path", "MINDROOM_STORAGE_PATH");
    /* Without a config there is no config dir: the working directory stands in, as it does
     * for ./config.yaml. */
    char dflt[PATH_MAX] = ".";
    if (s->config_path)
        mr_fs_dirname(s->config_path, dflt, sizeof dflt);
    size_t n = strlen(dflt);
    snprintf(dflt + n, sizeof dflt - n, "/mindroom_data");
    const char *path = mr_runtime_setting(rt, o->storage_path, "MINDROOM_STORAGE_PATH", dflt);
    char abs[PATH_MAX];
    if (path[0] == '/') {
        if (snprintf(abs, sizeof abs, "%s", path) >= (int)sizeof abs)
            return mr_err_set(err, MR_EINVAL, "%s: path is longer than %d bytes", name, PATH_MAX - 1);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return mr_err_errno(err, MR_EIO, errno, "%s: resolving %s against the working directory", name,
                                path);
        if (snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= (int)sizeof abs)
            return mr_err_set(err, MR_EINVAL, "%s: path is longer than %d bytes", name, PATH_MAX - 1);
    }
    return dup_into(&s->storage_path, abs, name, err);
}

static mr_code resolve_matrix(mr_runtime *rt, mr_err *err)
{
    mr_runtime_settings *s = &rt->settings;
    const char *hs = mr_runtime_setting(rt, NULL, "MATRIX_HOMESERVER", NULL);
    char host[MR_ID_MAX + 1] = "";
    if (hs) {
        mr_code rc = mr_id_url_host(hs, host, sizeof host, err);
        if (rc != MR_OK)
            mr_err_prefix(err, "MATRIX_HOMESERVER");
        else
            rc = dup_into(&s->homeserver, hs, "MATRIX_HOMESERVER", err);
        if (rc != MR_OK)
            return rc;
    }
    const char *name = mr_runtime_setting(rt, NULL, "MATRIX_SERVER_NAME", hs ? host : NULL);
    if (!name)
        return mr_err_set(err, MR_EINVAL,
                          "MATRIX_SERVER_NAME: not set, and there is no MATRIX_HOMESERVER to take the host from");
    const char *key = mr_runtime_setting(rt, NULL, "MATRIX_SERVER_NAME", NULL) ? "MATRIX_SERVER_NAME"
                                                                                : "MATRIX_HOMESERVER";
    if (mr_id_parse_server_name(name, NULL, err) != MR_OK) {
        mr_err_prefix(err, "%s", key);
        return MR_EINVAL;
    }
    if (dup_into(&s->server_name, name, key, err) != MR_OK)
        return MR_ENOMEM;

    const char *ns = mr_runtime_setting(rt, NULL, "MINDROOM_NAMESPACE", "");
    if (mr_id_namespace_normalize(ns, s->ns, err) != MR_OK) {
        mr_err_prefix(err, "MINDROOM_NAMESPACE");
        return MR_EINVAL;
    }
    return MR_OK;
}

/* The URL setting key into *out. Embedded defaults (scheme://<storage>/file) keep `mindroom run`
 * zero-setup; a distributed binary alone in its process must be told where its peers are, and
 * the message says what it needs. */
static mr_code resolve_url(const mr_runtime_opts *o, mr_runtime *rt, const char *key, const char *scheme,
                           const char *file, const char *needs, char **out, mr_err *err)
{
    char dflt[PATH_MAX + 32];
    snprintf(dflt, sizeof dflt, "%s://%s/%s", scheme, rt->settings.storage_path, file);
    const char *url = mr_runtime_setting(rt, NULL, key, o->distributed ? NULL : dflt);
    if (!url)
        return mr_err_set(err, MR_EINVAL, "%s: not set; mindroom-%s %s", key, o->service ? o->service : "mindroom",
                          needs);
    return dup_into(out, url, key, err);
}

/* The URLs of the peers the service uses. The embedded bus journals to a file, so a crash loses
 * no message it accepted. */
static mr_code resolve_urls(const mr_runtime_opts *o, mr_runtime *rt, mr_err *err)
{
    mr_runtime_settings *s = &rt->settings;
    mr_code rc = MR_OK;
    if (s->uses & MR_RUNTIME_USES_BUS)
        rc = resolve_url(o, rt, "MINDROOM_BUS_URL", "inproc", "bus.db",
                         "is one service of a distributed instance and needs kafka://host:port[,host:port] or "
                         "redis://host:port/db",
                         &s->bus_url, err);
    if (rc == MR_OK && s->bus_url && o->distributed && strncmp(s->bus_url, "inproc:", 7) == 0)
        rc = mr_err_set(err, MR_EINVAL,
                        "MINDROOM_BUS_URL: inproc: only connects services inside one process; mindroom-%s needs "
                        "kafka:// or redis:// (or run every service with `mindroom run`)",
                        o->service ? o->service : "mindroom");
    if (rc == MR_OK && (s->uses & MR_RUNTIME_USES_STORE))
        rc = resolve_url(o, rt, "MINDROOM_STORE_URL", "sqlite", "state.db",
                         "needs redis://host:port/db (or sqlite:///path for a single replica)", &s->store_url, err);
    return rc;
}

mr_code mr_runtime_parse_long(const char *key, const char *text, long min, long max, long *out, mr_err *err)
{
    /* strtol alone would take leading blanks, a '+' and an overflow clamped to LONG_MAX. */
    const char *digits = text[0] == '-' ? text + 1 : text;
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (!isdigit((unsigned char)*digits) || errno || *end || n < min || n > max)
        return mr_err_set(err, MR_EINVAL, "%s: \"%.40s\" is not a whole number from %ld to %ld", key, text, min,
                          max);
    *out = n;
    return MR_OK;
}

mr_code mr_runtime_setting_long(const mr_runtime *rt, const char *key, long dflt, long min, long max, long *out,
                                mr_err *err)
{
    const char *v = mr_runtime_setting(rt, NULL, key, NULL);
    if (!v) {
        *out = dflt;
        return MR_OK;
    }
    return mr_runtime_parse_long(key, v, min, max, out, err);
}

mr_code mr_runtime_settings_secret(mr_runtime *rt, mr_err *err)
{
    mr_runtime_settings *s = &rt->settings;
    if (!(s->uses & MR_RUNTIME_USES_SECRET))
        return MR_OK;
    const char *text = mr_runtime_setting(rt, NULL, "MINDROOM_INSTANCE_SECRET", NULL);
    if (text)
        return mr_runtime_secret_decode(text, s->secret, &s->secret_len, err);
    s->secret_from_file = true;
    return mr_runtime_secret_file(s->storage_path, s->secret, &s->secret_len, err);
}

mr_code mr_runtime_settings_resolve(const mr_runtime_opts *o, mr_runtime *rt, mr_err *err)
{
    mr_runtime_settings *s = &rt->settings;
    s->uses = o->uses ? o->uses : MR_RUNTIME_USES_ALL;
    mr_code rc = MR_OK;
    if (s->uses & MR_RUNTIME_USES_CONFIG) {
        rc = resolve_config_path(o, s, err);
        if (rc == MR_OK)
            rc = mr_dotenv_read(s->env_path, true, &rt->env, err);
    } else if (o->config_path) {
        rc = mr_err_set(err, MR_EINVAL, "--config: mindroom-%s reads no config.yaml; its settings are "
                        "environment variables (see --help)", o->service ? o->service : "mindroom");
    }
    if (rc == MR_OK)
        rc = resolve_logging(o, rt, err);
    if (rc == MR_OK)
        rc = resolve_storage(o, rt, err);
    if (rc == MR_OK && (s->uses & MR_RUNTIME_USES_MATRIX))
        rc = resolve_matrix(rt, err);
    if (rc == MR_OK)
        rc = resolve_urls(o, rt, err);
    return rc;
}

void mr_runtime_settings_free(mr_runtime_settings *s)
{
    free(s->config_path);
    free(s->env_path);
    free(s->storage_path);
    free(s->bus_url);
    free(s->store_url);
    free(s->homeserver);
    free(s->server_name);
    /* The secret does not outlive the runtime in freed memory. */
    explicit_bzero(s, sizeof *s);
}

void mr_runtime_mask_url(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : NULL;
    const char *at = auth ? strchr(auth, '@') : NULL;
    const char *slash = auth ? strchr(auth, '/') : NULL;
    const char *colon = auth ? strchr(auth, ':') : NULL;
    if (!at || (slash && slash < at) || !colon || colon > at) {
        snprintf(out, cap, "%s", url);
        return;
    }
    snprintf(out, cap, "%.*s***%s", (int)(colon + 1 - url), url, at);
}
