#!/usr/bin/env python3
"""test_check_test_timeouts.py: check_test_timeouts.py's scan on the cases
it must tell apart (test_timeouts_by_rule passes on the tree as it is, which
alone would not show the scan can fail).  Exits 1 naming each wrong line."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_test_timeouts import offenders  # noqa: E402

# (line, flagged?) for each set_* call below.
CASES = """\
set_tests_properties(a PROPERTIES TIMEOUT 5)
set_property(TEST a PROPERTY TIMEOUT 5)
if(THOTH_SANITIZE)
  set_tests_properties(a PROPERTIES TIMEOUT 600)
else()
  set_tests_properties(a PROPERTIES TIMEOUT 10)
endif()
if(NOT THOTH_SANITIZE)
  set_tests_properties(a PROPERTIES TIMEOUT 10)
endif()
set_tests_properties(a PROPERTIES TIMEOUT_AFTER_MATCH "1;x")
set_tests_properties(a
    PROPERTIES LABELS x TIMEOUT 5)
set_tests_properties(a PROPERTIES SKIP_RETURN_CODE 77)  # no TIMEOUT here
if(TARGET x)
  if (THOTH_SANITIZE)
    SET_TESTS_PROPERTIES(a PROPERTIES TIMEOUT 900)
  endif()
endif()
if(FOO)
elseif(THOTH_SANITIZE)
  set_tests_properties(a PROPERTIES TIMEOUT 900)
endif()
set_property(TARGET t PROPERTY TIMEOUT 5)
set_property(TEST a APPEND PROPERTY ENVIRONMENT X=1)
function(thoth_test_timeout seconds)
  set_tests_properties(${ARGN} PROPERTIES TIMEOUT ${seconds})
endfunction()
set_tests_properties(a PROPERTIES ENVIRONMENT "TIMEOUT=5")
set_tests_properties(a PROPERTIES PASS_REGULAR_EXPRESSION "TIMEOUT 5")
set_tests_properties(a b PROPERTIES LABELS "x;y" TIMEOUT 5)
set_tests_properties(a PROPERTIES   # no TIMEOUT here
    LABELS x)
set_property(TEST a PROPERTY LABELS TIMEOUT)
set_property(TEST a APPEND PROPERTY TIMEOUT 5)
"""
EXPECT = [1, 2, 6, 9, 12, 31, 35]

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "CMakeLists.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CASES)
    got = offenders(path)
if got != EXPECT:
    sys.exit("check_test_timeouts.py flagged lines %s of the cases, expected %s" % (got, EXPECT))
print("check_test_timeouts.py: the %d cases as expected" % len(EXPECT))
