/* LD_PRELOAD shim for wrk: makes OpenSSL forget the session it would otherwise resume, so
 * every new connection makes a full TLS handshake. wrk calls SSL_clear before reusing an SSL
 * object for a new connection; this wrapper then drops the saved session. Symbols are looked
 * up at run time, so the shim has no link-time dependency on libssl.
 * Build: cc -O2 -shared -fPIC -o no-resume.so no-resume.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
typedef struct ssl_st SSL;
int SSL_clear(SSL *s) {
    static int (*real_clear)(SSL *);
    static int (*set_session)(SSL *, void *);
    if (real_clear == NULL) {
        real_clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
        set_session = (int (*)(SSL *, void *))dlsym(RTLD_DEFAULT, "SSL_set_session");
        if (real_clear == NULL || set_session == NULL) abort();
    }
    int rc = real_clear(s);
    set_session(s, NULL);
    return rc;
}
