#!/bin/bash
# memshare: meson test wrapper for the valgrind suite.  tools/test.sh only
# hands it C test programs; it runs them under valgrind (memcheck, definite
# leaks are errors).  An interpreter reaching here anyway is run as it is,
# so a script test still tests what it was written for.
case "$(basename "$1")" in
    bash|sh|dash|python3|xmllint) exec "$@" ;;
esac
exec valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite "$@"
