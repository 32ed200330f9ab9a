# tests/guest/scenarios/idle.sh: does nothing; the guest just idles (init
# sleeps forever after the scenario returns).
:
