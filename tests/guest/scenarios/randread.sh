# tests/guest/scenarios/randread.sh: placeholder, being written (bench/).
echo "MS-ERROR scenario randread not written yet"
