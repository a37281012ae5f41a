# device-storage: storage figures (Slots.write with the NOR emulator) on their own.
.PHONY: bench-slots
bench-slots: $(STAMP) mpy
	@mkdir -p build/bench && rm -f build/bench/slots-flash.bin build/bench/slots-flash.bin.wire
	MICROPYPATH=build/mpy $(BIN)/micropython -X heapsize=64k -m otalink.device.slotbench build/bench/slots-flash.bin 256
