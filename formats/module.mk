# formats/ - the shared library every tool links (libidprov-formats.a).
PROJECT_LIBS += formats
LIBS_formats += $(filter-out %_main.c,$(wildcard formats/*.c))
