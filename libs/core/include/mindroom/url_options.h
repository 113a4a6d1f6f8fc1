/* url_options.h -- the one reader of the "?name=value&..." options of the bus and store URLs
 * (redis://...?partitions=8&prefix=mr-1a2b, kafka://...?prefix=mr-1a2b), so every option, the
 * namespace prefix above all, is checked by one rule. */
#ifndef MINDROOM_URL_OPTIONS_H
#define MINDROOM_URL_OPTIONS_H

#include "mindroom/err.h"

/* A namespace prefix: 1 to MR_URL_PREFIX_MAX letters, digits, '_' or '-'. No ':' or '.', the
 * separators the store (<prefix>:<key>), Redis Streams (<prefix>:mr:bus:...) and Kafka
 * (<prefix>.<topic>) put after it, so one prefix never begins another's names. */
#define MR_URL_PREFIX_MAX 64

/* One option a URL takes. max >= 1: a whole number from 1 to max, into *(int *)out; max 0: a
 * namespace prefix, into a char[MR_URL_PREFIX_MAX + 1] at out. Options not given are left as
 * they are. */
typedef struct mr_url_option {
    const char *name;
    long max;
    void *out;
} mr_url_option;

/* Reads query (the part after '?', NULL or "" for none) against the n options allowed. what
 * names the setting and display the URL as messages may quote it (password masked): a name
 * given twice, an unknown name or a bad value is MR_EINVAL naming both. */
mr_code mr_url_options_parse(const char *query, const mr_url_option *opts, size_t n, const char *what,
                             const char *display, mr_err *err);

#endif
