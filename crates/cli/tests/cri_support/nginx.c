/* Stand-in for nginx in critest's substitute images (no network here to
 * pull the real ones): the master process is named "nginx", its command
 * line reads "nginx: master process ...", it writes /var/run/nginx.pid and
 * serves /usr/share/nginx/html through a busybox httpd worker on
 * $NGINX_PORT (80 unless set). critest checks exactly these. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t worker;

static void stop(int sig) {
    (void)sig;
    if (worker > 0)
        kill(worker, SIGTERM);
    _exit(0);
}

int main(int argc, char **argv) {
    (void)argc;
    if (strncmp(argv[0], "nginx: ", 7) != 0) {
        char *nargv[] = {"nginx: master process nginx -g daemon off;", NULL};
        execv("/usr/sbin/nginx", nargv);
        perror("exec /usr/sbin/nginx");
        return 1;
    }
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGQUIT, stop);
    const char *port = getenv("NGINX_PORT");
    if (!port || !*port)
        port = "80";
    worker = fork();
    if (worker == 0) {
        execl("/bin/busybox", "httpd", "-f", "-p", port, "-h", "/usr/share/nginx/html", (char *)NULL);
        perror("exec busybox httpd");
        _exit(1);
    }
    FILE *f = fopen("/var/run/nginx.pid", "w");
    if (f) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
    for (;;) {
        int st;
        pid_t p = wait(&st);
        if (p == worker)
            return 1;
        if (p < 0)
            pause();
    }
}
