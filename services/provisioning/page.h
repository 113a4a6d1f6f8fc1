/* page.h -- the pairing page (the HTML, CSS and JavaScript of page/), embedded at build time by page/embed.cmake. */
#ifndef MINDROOM_PROV_PAGE_H
#define MINDROOM_PROV_PAGE_H

#include <stddef.h>

typedef struct page_asset {
    const char *name; /* "app.js" */
    const unsigned char *data;
    size_t len;
} page_asset;

extern const page_asset page_assets[];
extern const size_t page_nassets;

#endif
