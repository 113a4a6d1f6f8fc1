/* test_prompt_files.c -- the workspace in the prompt: context_files under "Personality Context",
 * files that cannot be read left out (missing, "..", symbolic links), and the start of MEMORY.md
 * with the file memory backend only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_tools.h"
#include "mindroom/config.h"
#include "mindroom/fsutil.h"
#include "mindroom/log.h"

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(mr_fs_write_atomic(path, text, strlen(text), 0600, true, NULL), MR_OK);
}

static mr_config *config(const char *backend)
{
    char text[512];
    snprintf(text, sizeof text,
             "models:\n  default: {provider: openai, id: m}\n"
             "memory: {backend: %s}\n"
             "agents:\n  mind:\n    display_name: Mind\n"
             "    context_files: [SOUL.md, USER.md, ../secret.md, MISSING.md, notes/STYLE.md]\n",
             backend);
    mr_config *cfg = NULL;
    mr_err err = {0};
    if (mr_config_parse(text, strlen(text), "config.yaml", &cfg, NULL, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return cfg;
}

static void test_context_files_and_memory(void **state)
{
    (void)state;
    char dir[] = "/tmp/mr-prompt-files-XXXXXX", ws[128], notes[160], link[160], secret[160];
    assert_non_null(mkdtemp(dir));
    snprintf(ws, sizeof ws, "%s/workspace", dir);
    snprintf(notes, sizeof notes, "%s/notes", ws);
    assert_int_equal(mr_fs_mkdirs(notes, 0700, NULL), MR_OK);
    snprintf(secret, sizeof secret, "%s/secret.md", dir);
    write_file(dir, "secret.md", "SECRET");
    write_file(ws, "SOUL.md", "You love tea.");
    write_file(notes, "STYLE.md", "Be brief.");
    snprintf(link, sizeof link, "%s/USER.md", ws);
    assert_int_equal(symlink(secret, link), 0);
    char memory[8000] = "";
    for (int i = 1; i <= 250; i++)
        snprintf(memory + strlen(memory), sizeof memory - strlen(memory), "- m%d: fact %d\n", i, i);
    write_file(ws, "MEMORY.md", memory);

    mr_config *cfg = config("file");
    char *text = prompt_files_context(ws, ws, cfg, &cfg->agents[0]);
    assert_non_null(text);
    assert_true(strncmp(text, "\n\n## Personality Context\n\n### SOUL.md\nYou love tea.\n\n### notes/STYLE.md\nBe brief."
                              "\n\n## Memory (MEMORY.md in your workspace)\n- m1: fact 1\n",
                        strlen("\n\n## Personality Context\n\n### SOUL.md\nYou love tea.\n\n### notes/STYLE.md\nBe brief."
                               "\n\n## Memory (MEMORY.md in your workspace)\n- m1: fact 1\n")) == 0);
    assert_null(strstr(text, "SECRET"));
    assert_non_null(strstr(text, "- m200: fact 200\n\n[MEMORY.md: 200 of 250 lines shown; read the file for the rest]"));
    assert_null(strstr(text, "m201"));
    free(text);
    mr_config_release(cfg);

    /* Another memory backend: no MEMORY.md in the prompt. */
    cfg = config("none");
    text = prompt_files_context(ws, ws, cfg, &cfg->agents[0]);
    assert_null(strstr(text, "## Memory"));
    assert_non_null(strstr(text, "You love tea."));
    free(text);
    mr_config_release(cfg);

    /* No workspace yet: nothing, and none is made. */
    char none[200];
    snprintf(none, sizeof none, "%s/absent/workspace", dir);
    cfg = config("file");
    text = prompt_files_context(none, none, cfg, &cfg->agents[0]);
    assert_string_equal(text, "");
    assert_false(mr_fs_exists(none));
    free(text);
    mr_config_release(cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    mr_log_configure(MR_LOG_ERROR, MR_LOG_HUMAN, stderr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_context_files_and_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
