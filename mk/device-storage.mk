# device-storage: storage figures (Slots.write with the NOR emulator) on their own.
# bench-slots: one JSON line at -X heapsize=64k (-> build/bench/slots.json), then the smallest
# -X heapsize (ladder, KiB) under which the same 256 KiB storage update still completes, then the
# same update of a compressible 256 KiB image as plain deflate (comp 1) and as deflate segments
# (comp 2, resumable), wires made on the host (-> build/bench/slots-deflate.json).
SLOTS_LADDER ?= 24 28 32 36 40 44 48 52 56 60 64
SLOTS_B = build/bench/slots-flash.bin
.PHONY: bench-slots
bench-slots: $(STAMP) mpy
	@mkdir -p build/bench && rm -f $(SLOTS_B) $(SLOTS_B).wire
	MICROPYPATH=build/mpy $(BIN)/micropython -X heapsize=64k -m otalink.device.slotbench $(SLOTS_B) 256 | tee build/bench/slots.json
	@for h in $(SLOTS_LADDER); do rm -f $(SLOTS_B) $(SLOTS_B).wire; \
	  if MICROPYPATH=build/mpy $(BIN)/micropython -X heapsize=$${h}k -m otalink.device.slotbench \
	     $(SLOTS_B) 256 >/dev/null 2>&1; then echo "slots_heap_limit_bytes $$((h * 1024))"; break; fi; \
	done
	@$(BIN)/python -c "import hashlib, sys, zlib; from otalink.host.gateway.ecu import segments; \
	  from tests.device_storage.sweep import image; img = image(4, 262144); \
	  c = zlib.compressobj(9, zlib.DEFLATED, -10); open('build/bench/slots-d1.wire', 'wb').write(c.compress(img) + c.flush()); \
	  open('build/bench/slots-d2.wire', 'wb').write(segments.encode(img, 10)); print(hashlib.sha256(img).hexdigest())" > build/bench/slots-sha.txt
	@rm -f build/bench/slots-deflate.json; for c in 1 2; do rm -f $(SLOTS_B); \
	  MICROPYPATH=build/mpy $(BIN)/micropython -X heapsize=64k -m otalink.device.slotbench $(SLOTS_B) 0 \
	    build/bench/slots-d$$c.wire $$(cat build/bench/slots-sha.txt) 262144 $$c | tee -a build/bench/slots-deflate.json; \
	done
