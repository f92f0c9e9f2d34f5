# Eosin — build, test, demo and benchmark.
#
#   make            build build/eosin, build/libeosin.a and build/libeosin.so (+ pkg-config files)
#   make install    the library, eosin.h and eosin.pc under PREFIX (/usr/local), the CLI in PREFIX/bin
#   make test       install missing packages, build, generate test data, run Criterion tests
#   make demo       install missing packages, build, make the sample slide, run the stain,
#                   metastasis and (with ../shared) Ki-67 and cytology tasks
#   make asan       build and run the tests with AddressSanitizer + UBSan (in build-asan/)
#   make device-bundle  device/bundle.tar.xz for the GPU machine (scripts/device-check there;
#                   docs/DEVICE-CHECK.md); make device-rehearsal runs that check here
#   make bench      benchmarks: read stage, inference, metastasis end to end and against WSInfer
#                   and TIAToolbox (their venvs in $(BUILD)/bench-venv*), IHC cells/s, cytology
#                   triage, what sharing one OUTDIR costs (docs/BENCHMARKS.md)
#   CUDA=auto|0|1   build the CUDA backend and kernels/*.cu (auto: when nvcc is found;
#                   CUDA_HOME=/usr/local/cuda has cuDNN and cuBLAS)

CC      ?= gcc
BUILD   ?= build
PKGS    := openslide vips glib-2.0 gthread-2.0 json-glib-1.0 libprotobuf-c libtiff-4 zlib libzstd libdeflate \
           cairo pangocairo
CFLAGS  ?= -O2 -g
# SANITIZE: extra compile+link flags (make asan sets AddressSanitizer + UBSan)
SANITIZE ?=
ALL_CFLAGS = $(CFLAGS) $(SANITIZE) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
           -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 -Wvla \
           -Wno-unused-parameter -Wno-missing-field-initializers -fPIC -fvisibility=hidden -pthread \
           -DEOSIN_VERSION=\"$(VERSION)\" -Isrc -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ALL_LDLIBS = $(SANITIZE) $(LDLIBS) $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldnnl -lm -pthread -fopenmp
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1)

NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA    ?= auto
CUDA_HOME ?= /usr/local/cuda
ifeq ($(CUDA),auto)
  # the backend needs cuDNN and cuBLAS beside nvcc
  CUDA_ON := $(if $(NVCC),$(if $(wildcard $(CUDA_HOME)/include/cudnn.h),1,0),0)
  ifneq ($(NVCC),)
    ifeq ($(CUDA_ON),0)
      $(warning nvcc found but no $(CUDA_HOME)/include/cudnn.h: building without CUDA)
    endif
  endif
else
  CUDA_ON := $(CUDA)
endif
NVCCFLAGS ?= -O2 -std=c++17 -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90

# The CUDA backend (CUDA_ON=1): its C files, the only ones that see CUDA
# headers, and kernels/*.cu go into libeosin.a; EOSIN_HAVE_CUDA is defined
# for every C file so backend.h declares _eosin_backend_cuda. With CUDA_ON=0
# nothing CUDA is compiled or linked.
CUDA_CSRCS := src/nn/backend-cuda.c src/nn/backend-cuda-steps.c src/nn/backend-cuda-mem.c \
              src/nn/backend-cuda-run.c src/nn/backend-cuda-conv.c src/nn/backend-cuda-dnn.c \
              src/nn/backend-cuda-info.c
ifeq ($(CUDA_ON),1)
  ALL_CFLAGS += -DEOSIN_HAVE_CUDA
  ALL_LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
endif

# src/ is the spine (the pipeline); each subsystem is a folder under it
# (README.md "Where things are"); the CLI in src/cli/ is not part of the library.
LIB_SRCS := $(filter-out src/cli/% $(CUDA_CSRCS),$(shell find src -name '*.c' | LC_ALL=C sort))
HDRS    := $(shell find src -name '*.h')
SRCS    := $(LIB_SRCS) $(if $(filter 1,$(CUDA_ON)),$(CUDA_CSRCS))
CLI     := $(wildcard src/cli/*.c)
OBJS    := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/onnx.pb-c.o
# ONNX's protobuf schema as Debian's libonnx-dev installs it; C code for it
# is generated at build time by protoc-c, never committed.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
CLIOBJS := $(CLI:src/%.c=$(BUILD)/obj/%.o)
KERNELS := $(wildcard kernels/*.cu)
KOBJS   := $(KERNELS:kernels/%.cu=$(BUILD)/kernels/%.o)
# Objects depend on this stamp, so switching CUDA on or off in one BUILD
# folder recompiles everything (EOSIN_HAVE_CUDA changes what they declare).
CUDA_STAMP := $(BUILD)/obj/.cuda-$(CUDA_ON)
TESTS   := $(wildcard tests/test-*.c)
TESTBIN := $(BUILD)/eosin-tests
TESTDATA:= $(BUILD)/testdata
SOVERSION := 0
PREFIX ?= /usr/local
PC_FILES := $(BUILD)/pkgconfig/eosin.pc $(BUILD)/pkgconfig/eosin-uninstalled.pc $(BUILD)/include/eosin.h

.PHONY: all setup test demo asan bench clean kernels fuzz
all: $(BUILD)/eosin $(BUILD)/libeosin.so $(PC_FILES) $(if $(filter 1,$(CUDA_ON)),kernels)

setup:
	@scripts/setup/install

$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $<"
	@cp $< $(BUILD)/gen/onnx.proto && cd $(BUILD)/gen && protoc-c --c_out=. onnx.proto

$(BUILD)/obj/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c $(CUDA_STAMP) | $(BUILD)/obj
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/nn/onnx-load.o $(BUILD)/obj/nn/graph.o: $(BUILD)/gen/onnx.pb-c.h

# The nucleus filters run row-wide loops over every tile pixel; GCC's -O2
# cost model leaves them scalar, the cheap one vectorises them.
$(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard src/cells/*.c)): ALL_CFLAGS += -ftree-vectorize -fvect-cost-model=cheap

# Winograd shares its chunks among oneDNN's OpenMP threads (libgomp)
$(BUILD)/obj/nn/backend-cpu-winograd.o: ALL_CFLAGS += -fopenmp

$(BUILD)/obj/%.o: src/%.c $(HDRS) $(CUDA_STAMP) | $(BUILD)/obj
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# only the CUDA backend's own C files see the CUDA headers
$(CUDA_CSRCS:src/%.c=$(BUILD)/obj/%.o): ALL_CFLAGS += -I$(CUDA_HOME)/include -Ikernels
$(CUDA_CSRCS:src/%.c=$(BUILD)/obj/%.o): kernels/eosin-kernels.h

$(CUDA_STAMP): | $(BUILD)/obj
	rm -f $(BUILD)/obj/.cuda-* && touch $@

$(BUILD)/obj $(BUILD)/kernels $(BUILD)/tobj:
	mkdir -p $@

$(BUILD)/libeosin.a: $(OBJS) $(if $(filter 1,$(CUDA_ON)),$(KOBJS))
	rm -f $@ && ar rcs $@ $^

# The shared library exports only what src/eosin.h declares (EOSIN_API:
# everything is compiled -fvisibility=hidden); programs find it with
# pkg-config: eosin.pc for an installed copy (make install), and
# eosin-uninstalled.pc, which pkg-config prefers when $(BUILD)/pkgconfig is
# on PKG_CONFIG_PATH, for this build tree (its include folder holds eosin.h
# alone, so a program that builds against it uses nothing else).
$(BUILD)/libeosin.so: $(OBJS) $(if $(filter 1,$(CUDA_ON)),$(KOBJS))
	@echo "  LD      $@"
	@$(CC) -shared -Wl,-soname,libeosin.so.$(SOVERSION) -Wl,--no-undefined $(SANITIZE) $^ \
	  -o $@.$(SOVERSION) $(ALL_LDLIBS)
	@ln -sf libeosin.so.$(SOVERSION) $@
$(BUILD)/include/eosin.h: src/eosin.h
	@mkdir -p $(@D) && cp $< $@
$(BUILD)/pkgconfig/eosin.pc: Makefile
	@mkdir -p $(@D)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: eosin' 'Description: whole-slide pathology analysis engine' 'Version: $(VERSION)' \
	  'Requires: glib-2.0' 'Libs: -L$${libdir} -leosin' 'Cflags: -I$${includedir}' > $@
$(BUILD)/pkgconfig/eosin-uninstalled.pc: Makefile
	@mkdir -p $(@D)
	@printf '%s\n' 'libdir=$(abspath $(BUILD))' 'includedir=$(abspath $(BUILD))/include' '' \
	  'Name: eosin' 'Description: whole-slide pathology analysis engine (build tree)' \
	  'Version: $(VERSION)' 'Requires: glib-2.0' 'Libs: -L$${libdir} -leosin -Wl,-rpath,$${libdir}' \
	  'Cflags: -I$${includedir}' > $@

.PHONY: install
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(BUILD)/libeosin.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libeosin.so.$(SOVERSION)
	ln -sf libeosin.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libeosin.so
	install -m 644 src/eosin.h $(DESTDIR)$(PREFIX)/include/eosin.h
	install -m 644 $(BUILD)/pkgconfig/eosin.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/eosin.pc
	install -m 755 $(BUILD)/eosin $(DESTDIR)$(PREFIX)/bin/eosin

# A program that embeds Eosin through eosin.h alone, built as a user would
# (pkg-config, the shared library): tests/test-embed.c runs it on a slide.
$(BUILD)/embed-run-slide: tests/embed/run-slide.c $(BUILD)/libeosin.so $(PC_FILES)
	@echo "  LD      $@"
	@$(CC) -std=c11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror $< -o $@ \
	  $$(PKG_CONFIG_PATH=$(BUILD)/pkgconfig pkg-config --cflags --libs eosin)

$(BUILD)/eosin: $(CLIOBJS) $(BUILD)/libeosin.a
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $^ -o $@ $(ALL_LDLIBS)

# CUDA kernels are compile- and link-checked on every build where nvcc exists,
# so a GPU-less CI still catches broken CUDA code.
kernels: $(BUILD)/libeosin-cuda.a
$(BUILD)/kernels/%.o: kernels/%.cu kernels/eosin-kernels.h | $(BUILD)/kernels
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
$(BUILD)/libeosin-cuda.a: $(KOBJS)
	rm -f $@ && ar rcs $@ $^
	$(NVCC) $(NVCCFLAGS) -shared $^ -o $(BUILD)/libeosin-cuda-linkcheck.so -lcudart

# Test data: generated slides and the scikit-image reference, never from ../shared.
$(TESTDATA)/.stamp: scripts/test/make-test-data scripts/test/make-test-onnx.py scripts/test/make-test-ops.py \
                    scripts/test/make-test-cnn.py scripts/test/export-test-models.py \
                    scripts/data/make-sample-slide scripts/data/slidelib.py scripts/data/make-bomb-tiff \
                    scripts/reference/stain-reference.py scripts/reference/onnx-reference.py \
                    scripts/reference/camelyon-reference.py
	scripts/test/make-test-data $(TESTDATA)
	touch $@

$(BUILD)/tobj/%.o: tests/%.c tests/test-util.h $(HDRS) $(CUDA_STAMP) | $(BUILD)/tobj
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

$(TESTBIN): $(TESTS:tests/%.c=$(BUILD)/tobj/%.o) $(BUILD)/tobj/test-util.o $(BUILD)/libeosin.a
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $^ -o $@ $(ALL_LDLIBS) -lcriterion

# The LD_PRELOAD fault injector of tests/test-faults.c: built without
# SANITIZE (it is preloaded into the eosin binary, not linked into it)
$(BUILD)/libfaultfs.so: tests/faultfs.c
	@mkdir -p $(BUILD)
	@echo "  CC      $<"
	@$(CC) -O2 -g -std=c11 -Wall -Wextra -Werror -shared -fPIC $< -o $@ -ldl -pthread

# OMP_WAIT_POLICY: the eosin binary sets it for itself (src/main.c); the test
# binary runs the library in-process and gets it here
test: setup
	$(MAKE) all $(TESTBIN) $(TESTDATA)/.stamp $(BUILD)/libfaultfs.so $(BUILD)/embed-run-slide
	scripts/test/check-structure --lib $(BUILD)/libeosin.so
	OMP_WAIT_POLICY=PASSIVE EOSIN_BIN=$(abspath $(BUILD)/eosin) EOSIN_TESTDATA=$(abspath $(TESTDATA)) \
	  EOSIN_FAULTFS=$(abspath $(BUILD)/libfaultfs.so) EOSIN_EMBED=$(abspath $(BUILD)/embed-run-slide) \
	  scripts/test/run-tests $(BUILD)/test.log $(TESTBIN) --jobs 2 --verbose $(TEST_ARGS)
	$(if $(SANITIZE),,scripts/test/slurm-test $(BUILD)/eosin $(TESTDATA))
	$(if $(SANITIZE),,$(MAKE) device-rehearsal-quick)

# The GPU machine's bundle (docs/DEVICE-CHECK.md): binaries, the libraries
# it lacks, test data, models, configs and a mosaic slide in one git-ignored
# tarball for scripts/device-check; the rehearsals run that script here from
# the bundle alone (the quick one, part of `make test`, from the staged tree).
DEVICE_BUNDLE := device/bundle.tar.xz
DEVICE_STAGE := $(BUILD)/device-bundle
DEVICE_DEPS := $(BUILD)/eosin $(TESTBIN) $(BUILD)/bench-inference $(BUILD)/bench-read \
               $(BUILD)/libfaultfs.so $(TESTDATA)/.stamp scripts/device/device-bundle \
               scripts/data/make-sample-slide scripts/data/make-mosaic-slide scripts/data/slidelib.py \
               $(wildcard models/* configs/*)
DEVICE_ENV := env -i PATH=/usr/bin:/bin HOME=$(HOME)
.PHONY: device-bundle device-rehearsal device-rehearsal-quick
device-bundle: $(DEVICE_BUNDLE)
$(DEVICE_BUNDLE): $(DEVICE_DEPS)
	@test "$(CUDA_ON)" = 1 || { echo "device-bundle: needs CUDA on (nvcc and cuDNN in $(CUDA_HOME))"; exit 1; }
	scripts/device/device-bundle $(BUILD) $(DEVICE_STAGE) $@
device-rehearsal: $(DEVICE_BUNDLE)
	$(DEVICE_ENV) OUT=$(abspath $(BUILD))/device-rehearsal scripts/device-check --rehearsal
device-rehearsal-quick: $(DEVICE_DEPS)
	scripts/device/device-bundle $(BUILD) $(DEVICE_STAGE)
	$(DEVICE_ENV) OUT=$(abspath $(BUILD))/device-rehearsal-quick scripts/device-check --rehearsal --quick \
	  --bundle-dir $(DEVICE_STAGE)

# Leak checking is off: glib/libvips keep process-lifetime caches that
# LeakSanitizer reports; memory errors and undefined behaviour abort.
asan: setup
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	$(MAKE) BUILD=build-asan CUDA=0 CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

SAMPLE := samples/sample.svs
PCAM_VALID := ../shared/data/metastasis/pcam/valid
KI67_CROP := ../shared/data/ihc/ki67-os2-ndpi-crop.ome.tif
LBC := ../shared/data/cytology/lbc
$(SAMPLE): scripts/data/make-sample-slide scripts/data/slidelib.py
	scripts/data/make-sample-slide --format aperio --width 6000 --height 4000 --mpp 0.5 --out $@

demo: setup
	$(MAKE) all $(SAMPLE)
	$(BUILD)/eosin info $(SAMPLE)
	$(BUILD)/eosin run --task configs/stain.ini $(SAMPLE) -o samples/out
	@echo "demo: stain: overlay samples/out/sample/overlay.tif (open over $(SAMPLE) in QuPath/ASAP)," \
	     "preview samples/out/sample/preview.png, report samples/out/sample/report.json"
	@if [ -d $(PCAM_VALID) ]; then \
	  scripts/data/make-mosaic-slide --pcam $(PCAM_VALID) --out-dir samples/mosaic --name mosaic-demo \
	    --grid 24 --lesions 2 --seed 7 && \
	  $(BUILD)/eosin batch --task configs/metastasis.ini samples/mosaic -o samples/out-metastasis && \
	  $(BUILD)/eosin eval camelyon16 --pred samples/out-metastasis --truth samples/mosaic && \
	  echo "demo: metastasis: samples/out-metastasis/mosaic-demo/lesions.geojson (QuPath)," \
	       "lesions.xml (ASAP), report.json; slide probabilities samples/out-metastasis/camelyon-slides.csv"; \
	else \
	  echo "demo: $(PCAM_VALID) is absent: the metastasis demo runs on the synthetic sample," \
	       "which is not lymph node (its scores mean nothing)"; \
	  $(BUILD)/eosin run --task configs/metastasis.ini $(SAMPLE) -o samples/out-metastasis || \
	    echo "demo: the QC gate refused the synthetic sample for metastasis (it is not H&E): as it should"; \
	fi
	@if [ -f $(KI67_CROP) ]; then \
	  $(BUILD)/eosin run --task configs/ihc-ki67.ini $(KI67_CROP) -o samples/out-ihc && \
	  echo "demo: Ki-67: samples/out-ihc/ki67-os2-ndpi-crop/report.json, cells.geojson (QuPath)"; \
	else \
	  echo "demo: $(KI67_CROP) is absent: no Ki-67 demo"; \
	fi
	@if [ -f $(LBC)/labels.csv ]; then \
	  scripts/data/make-lbc-slide --data $(LBC) --group HSIL_6 --grid 4 --seed 7 \
	    --out samples/lbc/HSIL_6.svs && \
	  $(BUILD)/eosin run --task configs/cytology.ini samples/lbc/HSIL_6.svs -o samples/out-cytology && \
	  echo "demo: cytology: samples/out-cytology/HSIL_6/gallery.png, report.json (triage)," \
	       "suspicious-cells.geojson (QuPath)"; \
	else \
	  echo "demo: $(LBC) is absent: no cytology demo"; \
	fi

bench: setup
	@scripts/setup/install bench
	$(MAKE) all $(BUILD)/bench-read $(BUILD)/bench-inference $(TESTDATA)/.stamp
	scripts/bench/bench-read $(BUILD)
	scripts/bench/bench-inference $(BUILD)
	scripts/bench/bench-metastasis $(BUILD)
	scripts/bench/bench-peers $(BUILD)
	scripts/bench/bench-ihc $(BUILD)
	scripts/bench/bench-cytology $(BUILD)
	scripts/bench/bench-scaling $(BUILD)

$(BUILD)/bench-read $(BUILD)/bench-inference: $(BUILD)/bench-%: scripts/bench/bench-%.c $(BUILD)/libeosin.a
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(ALL_LDLIBS)

# libFuzzer + AddressSanitizer + UBSan on every parser (tests/fuzz-*.c, clang
# from Debian): ONNX models, configs, CSV, manifests and predict lists, eval
# tables and ASAP XML, the marker and report.json a batch resumes from, and
# slides through OpenSlide/libvips. The library is compiled again with the
# sanitizers into $(FUZZ_DIR)/obj; scripts/data/make-fuzz-corpus writes the
# seeds and dictionaries; each fuzzer of FUZZERS runs FUZZ_SECONDS in turn,
# its corpus growing in $(FUZZ_DIR)/corpus/NAME, its log in
# $(FUZZ_DIR)/logs/NAME.log, a crash (or leak, timeout, OOM) written to
# $(FUZZ_DIR)/artifacts/ and failing the target once all have run.
#   make fuzz FUZZERS="config csv" FUZZ_SECONDS=60
# Rerun one finding: ASAN_OPTIONS=detect_leaks=0 build/fuzz/fuzz-NAME FILE
FUZZ_SECONDS ?= 180
FUZZERS ?= onnx config csv manifest eval asap report slide
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_CC ?= clang
FUZZ_CFLAGS := -g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -pthread -Isrc \
               -I$(BUILD)/gen -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_SRCS := $(LIB_SRCS)
FUZZ_OBJS := $(FUZZ_SRCS:src/%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/onnx.pb-c.o
# libgomp like libdnnl (clang's own OpenMP would be a second runtime): clang
# then ignores the pragmas, so Winograd runs on one thread, with GCC's omp.h
FUZZ_OMP := -fopenmp=libgomp -idirafter $(shell gcc -print-file-name=include 2>/dev/null)
FUZZ_LDLIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldnnl -lm -fopenmp=libgomp
# per fuzzer: the largest input in bytes and the seconds one input may take
FUZZ_MAX_LEN_onnx := 65536
FUZZ_MAX_LEN_config := 8192
FUZZ_MAX_LEN_csv := 4096
FUZZ_MAX_LEN_manifest := 4096
FUZZ_MAX_LEN_eval := 16384
FUZZ_MAX_LEN_asap := 16384
FUZZ_MAX_LEN_report := 16384
FUZZ_MAX_LEN_slide := 300000
FUZZ_TIMEOUT_slide := 30
FUZZ_RSS_MB ?= 2048
# leaks off as in `make asan`: glib/libvips/OpenSlide keep process-lifetime caches
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 OMP_WAIT_POLICY=PASSIVE \
            TMPDIR=$(abspath $(FUZZ_DIR)/tmp)
FUZZ_RUN = mkdir -p $(FUZZ_DIR)/corpus/$(1) && echo "fuzz: $(1) for $(FUZZ_SECONDS) s" && \
  $(FUZZ_ENV) $(FUZZ_DIR)/fuzz-$(1) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -detect_leaks=0 \
    -max_len=$(FUZZ_MAX_LEN_$(1)) -timeout=$(or $(FUZZ_TIMEOUT_$(1)),10) \
    -rss_limit_mb=$(FUZZ_RSS_MB) -dict=$(FUZZ_DIR)/dicts/$(1).dict \
    -artifact_prefix=$(abspath $(FUZZ_DIR)/artifacts)/$(1)- \
    $(FUZZ_DIR)/corpus/$(1) $(FUZZ_DIR)/seeds/$(1) > $(FUZZ_DIR)/logs/$(1).log 2>&1 && \
  grep -E "^(\#[0-9]+[[:space:]]+DONE|Done|stat::)" $(FUZZ_DIR)/logs/$(1).log || \
  { failed="$$failed $(1)"; tail -n 60 $(FUZZ_DIR)/logs/$(1).log; }

$(FUZZ_DIR)/obj/%.o: src/%.c $(HDRS) $(BUILD)/gen/onnx.pb-c.h
	@mkdir -p $(@D)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(if $(findstring winograd,$<),$(FUZZ_OMP)) \
	  -c $< -o $@
$(FUZZ_DIR)/obj/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	@mkdir -p $(@D)
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_DIR)/libeosin-fuzz.a: $(FUZZ_OBJS)
	rm -f $@ && ar rcs $@ $^
$(FUZZ_DIR)/fuzz-%: tests/fuzz-%.c tests/fuzz-common.c $(FUZZ_DIR)/libeosin-fuzz.a
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_DIR)/libeosin-fuzz.a -o $@ $(FUZZ_LDLIBS)
$(FUZZ_DIR)/seeds/.stamp: scripts/data/make-fuzz-corpus scripts/data/make-sample-slide scripts/data/slidelib.py \
                          $(wildcard configs/*.ini) \
                          $(BUILD)/eosin $(TESTDATA)/.stamp
	scripts/data/make-fuzz-corpus --out $(FUZZ_DIR) --eosin $(BUILD)/eosin --testdata $(TESTDATA)
	touch $@

fuzz: setup
	@scripts/setup/install fuzz
	$(MAKE) $(BUILD)/eosin $(TESTDATA)/.stamp
	$(MAKE) $(FUZZERS:%=$(FUZZ_DIR)/fuzz-%) $(FUZZ_DIR)/seeds/.stamp
	@rm -rf $(FUZZ_DIR)/tmp && mkdir -p $(FUZZ_DIR)/tmp $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs
	@failed=""; $(foreach f,$(FUZZERS),$(call FUZZ_RUN,$(f));) \
	  if [ -n "$$failed" ]; then echo "fuzz: findings in:$$failed (see $(FUZZ_DIR)/artifacts/)"; exit 1; fi

clean:
	rm -rf build build-asan
