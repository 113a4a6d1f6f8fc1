/* e2e_suite.h -- mindroom-authz end to end, as a process between real peers; one run per bus. */
#ifndef MINDROOM_AUTHZ_E2E_SUITE_H
#define MINDROOM_AUTHZ_E2E_SUITE_H

/* Runs the suite against the bus at bus_url with the store at store_url (both up already);
 * returns the number of failed tests. name labels the cmocka group. */
int e2e_run(const char *name, const char *bus_url, const char *store_url);

#endif
