/* doctor.h -- what the files of `mindroom doctor` share: the report each check adds one line
 * to, and the settings the checks read. */
#ifndef MINDROOM_CLI_DOCTOR_H
#define MINDROOM_CLI_DOCTOR_H

#include <stddef.h>
#include "mindroom/dotenv.h"

typedef enum doctor_level { DOCTOR_OK = 0, DOCTOR_WARN, DOCTOR_FAIL } doctor_level;

typedef struct doctor {
    const mr_dotenv *env;    /* the .env next to the config (empty when there is none) */
    const char *env_path;
    size_t counts[3];        /* lines written, by level */
} doctor;

/* Prints "<ok|warn|FAIL>  <what>" on stdout and counts it. */
void doctor_line(doctor *d, doctor_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The homeserver (MATRIX_HOMESERVER answers /versions), the registration paths it offers, and
 * whether the registration settings can complete one of them. */
void doctor_check_matrix(doctor *d);

#endif
