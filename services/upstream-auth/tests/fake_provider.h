/* fake_provider.h -- a tiny OAuth 2.0 provider on loopback, standing in for an external service:
 * GET /authorize issues a code and redirects to the redirect_uri with the state (RFC 6749
 * section 4.1.2), POST /token exchanges it once for tokens (section 4.1.3, client_secret_post,
 * PKCE S256 per RFC 7636) or refreshes them (section 6, the refresh token rotated as GitHub
 * Apps rotate theirs: a new one with each refresh, the old one refused), with the errors of
 * section 5.2; GET /api/user is its API, answering 401 with RFC 6750's challenge to a missing,
 * expired or revoked bearer token.
 * Failures abort the test. */
#ifndef MINDROOM_UA_FAKE_PROVIDER_H
#define MINDROOM_UA_FAKE_PROVIDER_H

#include <stdbool.h>

typedef struct fake_provider fake_provider;

fake_provider *fp_start(const char *client_id, const char *client_secret);
void fp_stop(fake_provider *p);

const char *fp_authorize_url(fake_provider *p);  /* "http://127.0.0.1:<port>/authorize" */
const char *fp_token_url(fake_provider *p);      /* "http://127.0.0.1:<port>/token" */

/* What the last /authorize request carried (NULL when absent); valid until the next request. */
const char *fp_last_authorize_param(fake_provider *p, const char *name);
/* Token requests answered 200, and refused (with why the last one was). */
unsigned fp_tokens_issued(fake_provider *p);
unsigned fp_tokens_refused(fake_provider *p);
const char *fp_last_refusal(fake_provider *p);

const char *fp_api_url(fake_provider *p);        /* "http://127.0.0.1:<port>/api" */
/* The expires_in of the tokens issued from now on (3600 at start). */
void fp_set_expires_in(fake_provider *p, long seconds);
/* Every token issued so far stops working, access and refresh alike (the user revoked the app). */
void fp_revoke_all(fake_provider *p);
unsigned fp_refreshes(fake_provider *p);
/* The next refresh requests wait until n have come or ms have passed, then are answered in turn:
 * callers that refresh at once meet at the provider, as they would when the network is slow. */
void fp_hold_refreshes(fake_provider *p, unsigned n, long ms);
/* From fp_stall_exchanges on, each authorization code exchange waits unanswered (a provider that
 * stalls) until fp_release_exchanges (fp_stop releases too). fp_wait_stalled: false unless n
 * exchanges wait within 20 s. */
void fp_stall_exchanges(fake_provider *p);
void fp_release_exchanges(fake_provider *p);
bool fp_wait_stalled(fake_provider *p, unsigned n);
/* The bearer token of the last API request ("" when it had none). */
void fp_last_api_token(fake_provider *p, char out[32]);

#endif
