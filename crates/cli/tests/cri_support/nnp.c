/* Stand-in for registry.k8s.io/e2e-test-images/nonewprivs: installed
 * setuid root, prints the effective uid it runs with (critest's NoNewPrivs
 * specs read this line from the container's log). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
