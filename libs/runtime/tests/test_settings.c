/* test_settings.c -- settings precedence, defaults, validation messages and the instance secret. */
#include "rt_test_util.h"

#include <sys/stat.h>

#include "mindroom/runtime.h"

typedef struct fixture {
    char dir[RT_DIR_SIZE];
} fixture;

static int setup(void **state)
{
    *state = rt_fixture_new(sizeof(fixture));
    return 0;
}

static mr_runtime *open_ok(const mr_runtime_opts *opts)
{
    mr_runtime *rt = NULL;
    mr_err err = {0};
    mr_code rc = mr_runtime_open(opts, &rt, &err);
    if (rc != MR_OK)
        fail_msg("mr_runtime_open: %s", err.msg);
    return rt;
}

/* Opens with opts, expecting MR_EINVAL and exactly `message`. */
static void expect_invalid(const mr_runtime_opts *opts, const char *message)
{
    mr_runtime *rt = NULL;
    mr_err err = {0};
    assert_int_equal(mr_runtime_open(opts, &rt, &err), MR_EINVAL);
    assert_null(rt);
    assert_string_equal(err.msg, message);
}

static void test_embedded_defaults(void **state)
{
    fixture *f = *state;
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = open_ok(&opts);
    char want[1024];
    snprintf(want, sizeof want, "%s/config.yaml", f->dir);
    assert_string_equal(rt->settings.config_path, want);
    snprintf(want, sizeof want, "%s/.env", f->dir);
    assert_string_equal(rt->settings.env_path, want);
    snprintf(want, sizeof want, "%s/mindroom_data", f->dir);
    assert_string_equal(rt->settings.storage_path, want);
    snprintf(want, sizeof want, "sqlite://%s/mindroom_data/state.db", f->dir);
    assert_string_equal(rt->settings.store_url, want);
    snprintf(want, sizeof want, "inproc://%s/mindroom_data/bus.db", f->dir);
    assert_string_equal(rt->settings.bus_url, want);
    /* The journal exists once the bus is open, private to the user. */
    snprintf(want, sizeof want, "%s/mindroom_data/bus.db", f->dir);
    struct stat st;
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_string_equal(rt->settings.server_name, "example.org");
    assert_null(rt->settings.homeserver);
    assert_string_equal(rt->settings.ns, "");
    assert_int_equal(rt->settings.log_level, MR_LOG_INFO);
    assert_int_equal(rt->settings.log_format, MR_LOG_HUMAN);
    mr_config *cfg = mr_runtime_config(rt, NULL);
    assert_int_equal(cfg->n_agents, 2);
    mr_config_release(cfg);
    mr_runtime_close(rt);
}

/* One setting through all four sources, the higher one winning at each step. */
static void test_precedence_storage_path(void **state)
{
    fixture *f = *state;
    char path[1024];
    rt_write(f->dir, ".env", "MINDROOM_STORAGE_PATH=from-dotenv\n");
    mr_runtime_opts opts = {.service = "demo"};

    mr_runtime *rt = open_ok(&opts);
    snprintf(path, sizeof path, "%s/from-dotenv", f->dir);
    assert_string_equal(rt->settings.storage_path, path);
    mr_runtime_close(rt);

    /* Inside the fixture: the runtime creates its store and bus journal there, and a journal
     * takes one process at a time. */
    snprintf(path, sizeof path, "%s/from-env", f->dir);
    setenv("MINDROOM_STORAGE_PATH", path, 1);
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    rt = open_ok(&opts);
    assert_string_equal(rt->settings.storage_path, path);
    mr_runtime_close(rt);

    snprintf(path, sizeof path, "%s/from-flag", f->dir);
    opts.storage_path = path;
    rt = open_ok(&opts);
    assert_string_equal(rt->settings.storage_path, path);
    mr_runtime_close(rt);
}

static void test_precedence_log_level(void **state)
{
    fixture *f = *state;
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = open_ok(&opts);
    assert_int_equal(rt->settings.log_level, MR_LOG_INFO);
    mr_runtime_close(rt);

    rt_write(f->dir, ".env", "LOG_LEVEL=error\nLOG_FORMAT=json\n");
    rt = open_ok(&opts);
    assert_int_equal(rt->settings.log_level, MR_LOG_ERROR);
    assert_int_equal(rt->settings.log_format, MR_LOG_JSON);
    mr_runtime_close(rt);

    setenv("LOG_LEVEL", "warn", 1);
    rt = open_ok(&opts);
    assert_int_equal(rt->settings.log_level, MR_LOG_WARN);
    mr_runtime_close(rt);

    opts.log_level = "debug";
    opts.log_format = "human";
    rt = open_ok(&opts);
    assert_int_equal(rt->settings.log_level, MR_LOG_DEBUG);
    assert_int_equal(rt->settings.log_format, MR_LOG_HUMAN);
    mr_runtime_close(rt);
    mr_log_configure(MR_LOG_INFO, MR_LOG_HUMAN, NULL);
}

/* An empty value in the environment is unset: the .env value does not come back either, the
 * default applies. */
static void test_empty_value_is_unset(void **state)
{
    fixture *f = *state;
    rt_write(f->dir, ".env", "MINDROOM_BUS_URL=redis://127.0.0.1:1/0\n");
    setenv("MINDROOM_BUS_URL", "", 1);
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = open_ok(&opts);
    char want[1024];
    snprintf(want, sizeof want, "inproc://%s/mindroom_data/bus.db", f->dir);
    assert_string_equal(rt->settings.bus_url, want);
    mr_runtime_close(rt);
}

static void test_config_path_sources(void **state)
{
    fixture *f = *state;
    char other[1024];
    snprintf(other, sizeof other, "%s/sub", f->dir);
    mr_err err = {0};
    assert_int_equal(mr_fs_mkdirs(other, 0700, &err), MR_OK);
    rt_write(other, "config.yaml", RT_CONFIG_THREE);
    rt_write(other, ".env", "MATRIX_SERVER_NAME=sub.example.org\n");
    snprintf(other, sizeof other, "%s/sub/config.yaml", f->dir);

    /* The environment names the file; the .env next to it is the one read. */
    unsetenv("MATRIX_SERVER_NAME");
    setenv("MINDROOM_CONFIG_PATH", other, 1);
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = open_ok(&opts);
    assert_string_equal(rt->settings.config_path, other);
    assert_string_equal(rt->settings.server_name, "sub.example.org");
    mr_config *cfg = mr_runtime_config(rt, NULL);
    assert_int_equal(cfg->n_agents, 3);
    mr_config_release(cfg);
    mr_runtime_close(rt);

    /* The flag beats the environment. */
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    char flag[1024];
    snprintf(flag, sizeof flag, "%s/config.yaml", f->dir);
    opts.config_path = flag;
    rt = open_ok(&opts);
    assert_string_equal(rt->settings.config_path, flag);
    mr_runtime_close(rt);

    char msg[2048];
    snprintf(msg, sizeof msg, "--config: %s/missing.yaml does not exist", f->dir);
    snprintf(flag, sizeof flag, "%s/missing.yaml", f->dir);
    expect_invalid(&opts, msg);

    opts.config_path = NULL;
    setenv("MINDROOM_CONFIG_PATH", flag, 1);
    snprintf(msg, sizeof msg, "MINDROOM_CONFIG_PATH names %s, which does not exist", flag);
    expect_invalid(&opts, msg);
}

static void test_broken_config_is_invalid(void **state)
{
    fixture *f = *state;
    rt_write(f->dir, "config.yaml", RT_CONFIG_BROKEN);
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = NULL;
    mr_err err = {0};
    assert_int_equal(mr_runtime_open(&opts, &rt, &err), MR_EINVAL);
    assert_null(rt);
    assert_true(strncmp(err.msg, "MINDROOM_CONFIG_PATH: ", 22) == 0);
    assert_non_null(strstr(err.msg, "config.yaml: 1 error"));
}

static void test_server_name_from_homeserver(void **state)
{
    (void)state;
    unsetenv("MATRIX_SERVER_NAME");
    mr_runtime_opts opts = {.service = "demo"};
    expect_invalid(&opts, "MATRIX_SERVER_NAME: not set, and there is no MATRIX_HOMESERVER to take the host from");

    setenv("MATRIX_HOMESERVER", "https://matrix.example.org:8448/", 1);
    mr_runtime *rt = open_ok(&opts);
    assert_string_equal(rt->settings.server_name, "matrix.example.org");
    assert_string_equal(rt->settings.homeserver, "https://matrix.example.org:8448/");
    mr_runtime_close(rt);

    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    rt = open_ok(&opts);
    assert_string_equal(rt->settings.server_name, "example.org");
    mr_runtime_close(rt);

    setenv("MATRIX_HOMESERVER", "matrix.example.org", 1);
    expect_invalid(&opts, "MATRIX_HOMESERVER: \"matrix.example.org\" is not an http:// or https:// URL");
}

static void test_namespace(void **state)
{
    (void)state;
    mr_runtime_opts opts = {.service = "demo"};
    setenv("MINDROOM_NAMESPACE", "AbCd1234", 1);
    mr_runtime *rt = open_ok(&opts);
    assert_string_equal(rt->settings.ns, "abcd1234");
    mr_runtime_close(rt);

    setenv("MINDROOM_NAMESPACE", "ab-c", 1);
    mr_runtime *none = NULL;
    mr_err err = {0};
    assert_int_equal(mr_runtime_open(&opts, &none, &err), MR_EINVAL);
    assert_true(strncmp(err.msg, "MINDROOM_NAMESPACE: ", 20) == 0);
    assert_non_null(strstr(err.msg, "ab-c"));
}

static void test_distributed_requires_urls(void **state)
{
    fixture *f = *state;
    mr_runtime_opts opts = {.service = "demo", .distributed = true};
    expect_invalid(&opts, "MINDROOM_BUS_URL: not set; mindroom-demo is one service of a distributed instance "
                          "and needs kafka://host:port[,host:port] or redis://host:port/db");
    setenv("MINDROOM_BUS_URL", "inproc:", 1);
    expect_invalid(&opts, "MINDROOM_BUS_URL: inproc: only connects services inside one process; mindroom-demo "
                          "needs kafka:// or redis:// (or run every service with `mindroom run`)");
    setenv("MINDROOM_BUS_URL", "kafka://127.0.0.1:9", 1);
    expect_invalid(&opts, "MINDROOM_STORE_URL: not set; mindroom-demo needs redis://host:port/db (or "
                          "sqlite:///path for a single replica)");
    char url[1024];
    snprintf(url, sizeof url, "sqlite://%s/state.db", f->dir);
    setenv("MINDROOM_STORE_URL", url, 1);
    setenv("MINDROOM_BUS_URL", "ftp://x", 1);
    mr_runtime *rt = NULL;
    mr_err err = {0};
    assert_int_equal(mr_runtime_open(&opts, &rt, &err), MR_EINVAL);
    assert_true(strncmp(err.msg, "MINDROOM_BUS_URL: bus URL \"ftp://x\"", 35) == 0);

    setenv("MINDROOM_BUS_URL", "kafka://127.0.0.1:9", 1);
    rt = open_ok(&opts);
    assert_string_equal(rt->settings.store_url, url);
    assert_non_null(rt->bus);
    assert_non_null(rt->store);
    mr_runtime_close(rt);
}

/* A service that uses only the store and the secret (upstream-auth): no config.yaml, no bus and
 * no Matrix settings are looked up or required, but the store URL still is. */
static void test_only_the_settings_a_service_uses(void **state)
{
    fixture *f = *state;
    char missing[1024], url[1024], storage[1024];
    snprintf(missing, sizeof missing, "%s/absent/config.yaml", f->dir);
    setenv("MINDROOM_CONFIG_PATH", missing, 1);
    unsetenv("MATRIX_SERVER_NAME");
    unsetenv("MINDROOM_BUS_URL");
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    snprintf(storage, sizeof storage, "%s/data", f->dir);
    setenv("MINDROOM_STORAGE_PATH", storage, 1);
    mr_runtime_opts opts = {.service = "demo", .distributed = true,
                            .uses = MR_RUNTIME_USES_STORE | MR_RUNTIME_USES_SECRET};
    expect_invalid(&opts, "MINDROOM_STORE_URL: not set; mindroom-demo needs redis://host:port/db (or "
                          "sqlite:///path for a single replica)");
    snprintf(url, sizeof url, "sqlite://%s/state.db", f->dir);
    setenv("MINDROOM_STORE_URL", url, 1);
    mr_runtime *rt = open_ok(&opts);
    assert_null(rt->settings.config_path);
    assert_null(rt->settings.bus_url);
    assert_null(rt->settings.server_name);
    assert_null(rt->bus);
    assert_non_null(rt->store);
    assert_null(mr_runtime_config(rt, NULL));
    assert_int_equal(mr_runtime_reload(rt, NULL), MR_OK);
    /* The secret reached the store: a sealed value goes in and comes back. */
    mr_err err = {0};
    assert_int_equal(mr_store_set_secret(rt->store, "t:sealed", "v", 1, 60000, &err), MR_OK);
    mr_runtime_close(rt);

    opts.config_path = missing;
    expect_invalid(&opts, "--config: mindroom-demo reads no config.yaml; its settings are environment "
                          "variables (see --help)");
    /* A service that uses the config and the bus still refuses to start without them. */
    opts = (mr_runtime_opts){.service = "demo", .distributed = true, .uses = MR_RUNTIME_USES_ALL};
    mr_runtime *none = NULL;
    assert_int_equal(mr_runtime_open(&opts, &none, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "MINDROOM_CONFIG_PATH"));
    unsetenv("MINDROOM_CONFIG_PATH");
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    expect_invalid(&opts, "MINDROOM_BUS_URL: not set; mindroom-demo is one service of a distributed instance "
                          "and needs kafka://host:port[,host:port] or redis://host:port/db");
    unsetenv("MINDROOM_INSTANCE_SECRET");
    unsetenv("MINDROOM_STORAGE_PATH");
    unsetenv("MINDROOM_STORE_URL");
}

static void test_secret_file_created_and_reused(void **state)
{
    fixture *f = *state;
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = open_ok(&opts);
    assert_true(rt->settings.secret_from_file);
    assert_int_equal(rt->settings.secret_len, 32);
    unsigned char first[32];
    memcpy(first, rt->settings.secret, 32);
    mr_runtime_close(rt);

    char path[1024];
    snprintf(path, sizeof path, "%s/mindroom_data/instance_secret", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    snprintf(path, sizeof path, "%s/mindroom_data", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    rt = open_ok(&opts);
    assert_memory_equal(rt->settings.secret, first, 32);
    /* The store seals with it: a value written now reads back after a restart. */
    mr_err err = {0};
    assert_int_equal(mr_store_set_secret(rt->store, "account:a:token", "tok", 3, 0, &err), MR_OK);
    mr_runtime_close(rt);
    rt = open_ok(&opts);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_get_secret(rt->store, "account:a:token", &v, &len, &err), MR_OK);
    assert_string_equal(v, "tok");
    free(v);
    mr_runtime_close(rt);
}

static void test_secret_file_damaged(void **state)
{
    fixture *f = *state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mindroom_data", f->dir);
    mr_err err = {0};
    assert_int_equal(mr_fs_mkdirs(dir, 0700, &err), MR_OK);
    rt_write(dir, "instance_secret", "short");
    mr_runtime_opts opts = {.service = "demo"};
    char msg[2048];
    snprintf(msg, sizeof msg,
             "MINDROOM_STORAGE_PATH: %s/instance_secret holds 5 bytes; an instance secret is 32 to 64 bytes "
             "(remove it only if nothing was stored with it yet)",
             dir);
    expect_invalid(&opts, msg);
}

static void test_secret_from_environment(void **state)
{
    (void)state;
    mr_runtime_opts opts = {.service = "demo"};
    unsigned char want[32];
    for (int i = 0; i < 32; i++)
        want[i] = (unsigned char)(i * 8 + 1);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", want[i]);
    setenv("MINDROOM_INSTANCE_SECRET", hex, 1);
    mr_runtime *rt = open_ok(&opts);
    assert_false(rt->settings.secret_from_file);
    assert_int_equal(rt->settings.secret_len, 32);
    assert_memory_equal(rt->settings.secret, want, 32);
    mr_runtime_close(rt);
}

static void test_secret_base64_forms(void **state)
{
    (void)state;
    mr_runtime_opts opts = {.service = "demo"};
    /* 33 bytes 0xfb 0xff 0xbf ...: the alphabets differ on these ('+/' against '-_'). */
    unsigned char want[33];
    for (int i = 0; i < 33; i += 3) {
        want[i] = 0xfb;
        want[i + 1] = 0xff;
        want[i + 2] = 0xbf;
    }
    const char *forms[] = {"+/+/", "-_-_"};
    for (size_t k = 0; k < 2; k++) {
        char text[64] = "";
        for (int i = 0; i < 11; i++)
            strcat(text, forms[k]);
        setenv("MINDROOM_INSTANCE_SECRET", text, 1);
        mr_runtime *rt = open_ok(&opts);
        assert_int_equal(rt->settings.secret_len, 33);
        assert_memory_equal(rt->settings.secret, want, 33);
        mr_runtime_close(rt);
    }
    /* Unpadded and padded forms of 32 zero bytes. */
    const char *zeros[] = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
    unsigned char z[32] = {0};
    for (size_t k = 0; k < 2; k++) {
        setenv("MINDROOM_INSTANCE_SECRET", zeros[k], 1);
        mr_runtime *rt = open_ok(&opts);
        assert_int_equal(rt->settings.secret_len, 32);
        assert_memory_equal(rt->settings.secret, z, 32);
        mr_runtime_close(rt);
    }
}

static void test_secret_rejected_without_echo(void **state)
{
    (void)state;
    mr_runtime_opts opts = {.service = "demo"};
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff", 1);
    expect_invalid(&opts, "MINDROOM_INSTANCE_SECRET: decodes to 16 bytes; it must be 32 to 64 (generate one with "
                          "`openssl rand -hex 32`)");
    char long_hex[131];
    memset(long_hex, 'a', 130);
    long_hex[130] = '\0';
    setenv("MINDROOM_INSTANCE_SECRET", long_hex, 1);
    expect_invalid(&opts, "MINDROOM_INSTANCE_SECRET: decodes to 65 bytes; it must be 32 to 64 (generate one with "
                          "`openssl rand -hex 32`)");
    setenv("MINDROOM_INSTANCE_SECRET", "not a secret at all, has spaces!", 1);
    expect_invalid(&opts, "MINDROOM_INSTANCE_SECRET: neither hex nor base64 (generate one with `openssl rand "
                          "-hex 32`)");
}

static void test_bad_log_settings(void **state)
{
    fixture *f = *state;
    mr_runtime_opts opts = {.service = "demo", .log_level = "loud"};
    mr_runtime *rt = NULL;
    mr_err err = {0};
    assert_int_equal(mr_runtime_open(&opts, &rt, &err), MR_EINVAL);
    assert_true(strncmp(err.msg, "--log-level: ", 13) == 0);
    opts.log_level = NULL;
    rt_write(f->dir, ".env", "LOG_FORMAT=xml\n");
    assert_int_equal(mr_runtime_open(&opts, &rt, &err), MR_EINVAL);
    assert_true(strncmp(err.msg, "LOG_FORMAT: ", 12) == 0);
}

static void test_mask_url_in_setting(void **state)
{
    (void)state;
    /* The bus URL's password is not echoed in the error about it. */
    mr_runtime_opts opts = {.service = "demo"};
    setenv("MINDROOM_BUS_URL", "redis://user:hunter2@127.0.0.1:99999/0", 1);
    mr_runtime *rt = NULL;
    mr_err err = {0};
    assert_int_equal(mr_runtime_open(&opts, &rt, &err), MR_EINVAL);
    assert_true(strncmp(err.msg, "MINDROOM_BUS_URL: ", 18) == 0);
    assert_null(strstr(err.msg, "hunter2"));
}

/* Model keys and base URLs in .env reach the process environment, where the model client reads
 * them, in every binary that calls models (mindroom-agent read none of them before), and only
 * there; the environment's own value wins. */
static void test_model_settings_from_dotenv(void **state)
{
    fixture *f = *state;
    rt_write(f->dir, ".env", "OPENAI_API_KEY=key-from-dotenv\nOPENAI_BASE_URL=http://127.0.0.1:9/v1\n");
    unsetenv("OPENAI_API_KEY");
    unsetenv("OPENAI_BASE_URL");
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = open_ok(&opts);
    assert_null(getenv("OPENAI_API_KEY"));
    mr_runtime_close(rt);

    opts.model_settings = true;
    rt = open_ok(&opts);
    assert_string_equal(getenv("OPENAI_API_KEY"), "key-from-dotenv");
    assert_string_equal(getenv("OPENAI_BASE_URL"), "http://127.0.0.1:9/v1");
    mr_runtime_close(rt);

    setenv("OPENAI_API_KEY", "key-from-environment", 1);
    rt = open_ok(&opts);
    assert_string_equal(getenv("OPENAI_API_KEY"), "key-from-environment");
    mr_runtime_close(rt);
    unsetenv("OPENAI_API_KEY");
    unsetenv("OPENAI_BASE_URL");
}

/* One reader for every service's whole-number settings: digits only (no blanks, no '+', no
 * overflow clamped to LONG_MAX), the range in the message, *out kept on refusal, and the
 * default (from .env too) when unset or empty. */
static void test_whole_number_settings(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *text;
        long want; /* -99 when refused */
    } cases[] = {
        {"0", 0}, {"7", 7}, {"100", 100}, {"-5", -5}, {"007", 7},
        {"101", -99}, {"-6", -99}, {"", -99}, {"-", -99}, {" 5", -99}, {"+5", -99}, {"5 ", -99},
        {"5x", -99}, {"0x10", -99}, {"99999999999999999999", -99}, {"-99999999999999999999", -99},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        long n = 42;
        mr_err err = {0};
        mr_code rc = mr_runtime_parse_long("MINDROOM_X", cases[i].text, -5, 100, &n, &err);
        if (cases[i].want == -99) {
            char want[160];
            snprintf(want, sizeof want, "MINDROOM_X: \"%s\" is not a whole number from -5 to 100", cases[i].text);
            if (rc != MR_EINVAL || n != 42 || strcmp(err.msg, want) != 0)
                fail_msg("\"%s\": rc %d, n %ld, message \"%s\"", cases[i].text, rc, n, err.msg);
        } else if (rc != MR_OK || n != cases[i].want) {
            fail_msg("\"%s\": rc %d, n %ld (%s)", cases[i].text, rc, n, err.msg);
        }
    }
    mr_err err = {0};
    long n = 0;
    assert_int_equal(mr_runtime_parse_long("K", "123456789012345678901234567890123456789012345", 0, 1, &n, &err),
                     MR_EINVAL);
    assert_string_equal(err.msg, "K: \"1234567890123456789012345678901234567890\" is not a whole number from 0 to 1");

    rt_write(f->dir, ".env", "MINDROOM_FROM_DOTENV=12\nMINDROOM_EMPTY=\n");
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = open_ok(&opts);
    assert_int_equal(mr_runtime_setting_long(rt, "MINDROOM_FROM_DOTENV", 3, 1, 20, &n, &err), MR_OK);
    assert_int_equal(n, 12);
    assert_int_equal(mr_runtime_setting_long(rt, "MINDROOM_EMPTY", 3, 1, 20, &n, &err), MR_OK);
    assert_int_equal(n, 3);
    setenv("MINDROOM_FROM_DOTENV", "21", 1);
    assert_int_equal(mr_runtime_setting_long(rt, "MINDROOM_FROM_DOTENV", 3, 1, 20, &n, &err), MR_EINVAL);
    assert_string_equal(err.msg, "MINDROOM_FROM_DOTENV: \"21\" is not a whole number from 1 to 20");
    unsetenv("MINDROOM_FROM_DOTENV");
    mr_runtime_close(rt);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, rt_fixture_free)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_embedded_defaults),
        T(test_precedence_storage_path),
        T(test_precedence_log_level),
        T(test_empty_value_is_unset),
        T(test_config_path_sources),
        T(test_broken_config_is_invalid),
        T(test_server_name_from_homeserver),
        T(test_namespace),
        T(test_distributed_requires_urls),
        T(test_secret_file_created_and_reused),
        T(test_secret_file_damaged),
        T(test_secret_from_environment),
        T(test_secret_base64_forms),
        T(test_secret_rejected_without_echo),
        T(test_bad_log_settings),
        T(test_model_settings_from_dotenv),
        T(test_mask_url_in_setting),
        T(test_only_the_settings_a_service_uses),
        T(test_whole_number_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
