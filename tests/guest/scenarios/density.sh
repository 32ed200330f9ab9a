# tests/guest/scenarios/density.sh: placeholder, being written (bench/).
echo "MS-ERROR scenario density not written yet"
