/*
 * umockdev_wrap.c - re-execution under umockdev-wrapper; see
 * umockdev_wrap.h.
 */
#include "tests/device/umockdev_wrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tdev_umockdev_wrap(const char *prog, int argc, char **argv)
{
	const char *lp = getenv("LD_PRELOAD");
	if (lp != NULL && strstr(lp, "umockdev") != NULL)
		return;
	char **args = calloc((size_t)argc + 2, sizeof(*args));
	if (args == NULL)
		exit(3);
	static char wrapper[] = "umockdev-wrapper";
	args[0] = wrapper;
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	execvp("umockdev-wrapper", args);
	(void)fprintf(stderr, "%s: umockdev-wrapper: ", prog);
	perror(NULL);
	exit(3);
}
