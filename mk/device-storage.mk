# device-storage: storage figures (Slots.write with the NOR emulator) on their own.
# bench-slots: one JSON line at -X heapsize=64k (-> build/bench/slots.json), then the smallest
# -X heapsize (ladder, KiB) under which the same 256 KiB storage update still completes.
SLOTS_LADDER ?= 24 28 32 36 40 44 48 52 56 60 64
.PHONY: bench-slots
bench-slots: $(STAMP) mpy
	@mkdir -p build/bench && rm -f build/bench/slots-flash.bin build/bench/slots-flash.bin.wire
	MICROPYPATH=build/mpy $(BIN)/micropython -X heapsize=64k -m otalink.device.slotbench build/bench/slots-flash.bin 256 | tee build/bench/slots.json
	@for h in $(SLOTS_LADDER); do rm -f build/bench/slots-flash.bin build/bench/slots-flash.bin.wire; \
	  if MICROPYPATH=build/mpy $(BIN)/micropython -X heapsize=$${h}k -m otalink.device.slotbench \
	     build/bench/slots-flash.bin 256 >/dev/null 2>&1; then echo "slots_heap_limit_bytes $$((h * 1024))"; break; fi; \
	done
