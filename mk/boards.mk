# Boards: profiles, deployment with mpremote, hardware-in-the-loop (docs/hil.md).
#   make boards                         list and validate the board profiles
#   make deploy BOARD=esp32 PORT=/dev/ttyUSB0 [LINE_PORT=/dev/ttyUSB1] [DEPLOY_ARGS=...]
#   make hil BOARD=esp32 PORT=/dev/ttyUSB0 [LINE_PORT=/dev/ttyUSB1]   hardware tests
#   make hil-emulated                   the same hardware tests on the unix port as a board
#   make bench-boards                   peak heap per board profile (build/bench/boards.json)
BOARD ?=
PORT ?=
LINE_PORT ?=
DEPLOY_ARGS ?=

.PHONY: boards deploy hil hil-emulated bench-boards

boards: $(STAMP)
	$(BIN)/otalink device boards

deploy: $(STAMP)
	@test -n "$(BOARD)" -a -n "$(PORT)" || { echo "usage: make deploy BOARD=esp32 PORT=/dev/ttyUSB0 [LINE_PORT=...]"; exit 2; }
	$(BIN)/otalink device deploy --board $(BOARD) --port $(PORT) $(if $(LINE_PORT),--line-port $(LINE_PORT)) $(DEPLOY_ARGS)

hil: $(STAMP) mpy
	@test -n "$(BOARD)" -a -n "$(PORT)" || { echo "usage: make hil BOARD=esp32 PORT=/dev/ttyUSB0 [LINE_PORT=...]"; exit 2; }
	$(BIN)/python -m pytest tests/tools/deploy -m hardware --board $(BOARD) --port $(PORT) $(if $(LINE_PORT),--line-port $(LINE_PORT))

hil-emulated: $(STAMP) mpy
	$(BIN)/python -m pytest tests/tools/deploy -m hardware --board unix --port emulate

bench-boards: $(STAMP) mpy
	$(BIN)/python -m bench.bench_boards
