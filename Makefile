# visage: build, test, demo, models. `make help` lists the targets.
# Knobs: WERROR=1 (warnings are errors), SAN=1 (ASan+UBSan into build-san/), V=1 (show commands),
# PREFIX=/usr/local.

CC      ?= cc
PREFIX  ?= /usr/local
VERSION := 0.1.0
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wno-format-truncation
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifeq ($(SAN),1)
BUILD   := build-san
CFLAGS  := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
CPPFLAGS += -D_GNU_SOURCE -DVISAGE_VERSION='"$(VERSION)"'
# x86-64-v2 (SSE4.2, 2009 on) lets the compiler vectorise the CPU kernels; other machines build
# for their default target
ARCH_FLAGS := $(if $(filter x86_64,$(shell uname -m)),-march=x86-64-v2)
ALL_CFLAGS = -std=c11 -pthread $(ARCH_FLAGS) $(WARN) $(CFLAGS) $(CPPFLAGS)

# ---- dependencies: one ✓/✗ line each (see deps/packages.txt for the Debian packages) ----------
REQUIRED_PC := libavformat libavcodec libavutil libswscale libpng jansson inih openblas
OPTIONAL_PC := ncursesw libsixel
have_pc = $(shell pkg-config --exists $(1) 2>/dev/null && echo 1)
$(foreach p,$(REQUIRED_PC) $(OPTIONAL_PC),$(eval HAVE_$(p) := $(call have_pc,$(p))))
MISSING := $(strip $(foreach p,$(REQUIRED_PC),$(if $(HAVE_$(p)),,$(p))))

# ---- CUDA: nvcc, cuDNN and cuBLAS; without all three the CUDA backend is cuda/none.c ------------
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(CUDA),0)
NVCC :=
endif
ifeq ($(SAN),1)
NVCC := # the CUDA runtime and ASan's shadow memory do not mix; the sanitiser build is CPU-only
endif
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
first_with = $(firstword $(foreach d,$(2),$(if $(wildcard $(d)/$(1)),$(d))))
LIBDIRS     := $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu
CUDNN_INC   := $(call first_with,cudnn.h,$(CUDA_HOME)/include /usr/include /usr/include/x86_64-linux-gnu)
CUDNN_LIB   := $(call first_with,libcudnn.so,$(LIBDIRS))
CUBLAS_LIB  := $(call first_with,libcublasLt.so,$(LIBDIRS))
CUDART_LIB  := $(call first_with,libcudart_static.a,$(LIBDIRS))
HAVE_CUDA   := $(if $(and $(CUDNN_INC),$(CUDNN_LIB),$(CUBLAS_LIB),$(CUDART_LIB)),1)
endif
# every architecture this nvcc supports, as machine code, plus PTX of the newest for later cards
GPU_ARCH ?= $(if $(HAVE_CUDA),$(shell $(NVCC) --list-gpu-arch 2>/dev/null | sed 's/compute_//' | sort -n | tr '\n' ' '))
GPU_PTX  := $(lastword $(GPU_ARCH))
NVCC_ARCH := $(foreach a,$(GPU_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
             -gencode arch=compute_$(GPU_PTX),code=compute_$(GPU_PTX)
NVCCFLAGS ?= -O3 -g
ALL_NVCCFLAGS = -std=c++17 $(NVCC_ARCH) $(NVCCFLAGS) -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-Wno-missing-field-initializers,-Wno-format-truncation \
                $(if $(filter 1,$(WERROR)),-Werror all-warnings) -I$(CUDNN_INC) $(CPPFLAGS)
# static cudart; cuBLAS(Lt) and cuDNN from where they were found (rpath), nothing else
comma := ,
CUDA_LIBS := $(if $(HAVE_CUDA),$(sort -L$(CUDART_LIB) -L$(CUBLAS_LIB) -L$(CUDNN_LIB)) \
             $(sort -Wl$(comma)-rpath$(comma)$(CUBLAS_LIB) -Wl$(comma)-rpath$(comma)$(CUDNN_LIB)) \
             -lcudnn -lcublasLt -lcublas -lcudart_static -ldl -lrt -lstdc++)

ifeq ($(MAKELEVEL),0)
ifneq ($(filter-out deps help clean distclean models,$(or $(MAKECMDGOALS),all)),)
$(info visage $(VERSION) dependencies:)
$(foreach p,$(REQUIRED_PC),$(info $(if $(HAVE_$(p)),  ✓,  ✗) $(p)$(if $(HAVE_$(p)),, (required: make deps))))
$(foreach p,$(OPTIONAL_PC),$(info $(if $(HAVE_$(p)),  ✓,  ✗) $(p) (optional, for the workbench)))
$(info $(if $(HAVE_CUDA),  ✓ CUDA ($(NVCC); cuDNN $(CUDNN_LIB); sm $(GPU_ARCH)),  ✗ CUDA$(if $(NVCC), (nvcc found but $(if $(CUDNN_INC),,cudnn.h )$(if $(CUDNN_LIB),,libcudnn )$(if $(CUBLAS_LIB),,libcublasLt )missing),) (optional: CPU backend only)))
endif
endif

# quiet build lines; V=1 shows the commands
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-5s %s\n'
endif

PC_LIBS  := $(REQUIRED_PC)
DEP_CFLAGS := $(if $(MISSING),,$(shell pkg-config --cflags $(PC_LIBS)))
DEP_LIBS   := $(if $(MISSING),,$(shell pkg-config --libs $(PC_LIBS))) $(CUDA_LIBS) -lm -lpthread
# the workbench: ncurses (without it `visage` has only its command line) and libsixel (without
# it face previews are drawn with half-block characters only)
TUI_PC     := $(if $(HAVE_ncursesw),ncursesw) $(if $(HAVE_libsixel),libsixel)
TUI_CFLAGS := $(if $(HAVE_ncursesw),-DVS_HAVE_NCURSES) $(if $(HAVE_libsixel),-DVS_HAVE_SIXEL) \
              $(if $(TUI_PC),$(shell pkg-config --cflags $(TUI_PC)))
TUI_LIBS   := $(if $(TUI_PC),$(shell pkg-config --libs $(TUI_PC)))

# ---- sources ----------------------------------------------------------------------------------
CORE_SRC := $(wildcard core/*.c core/nn/*.c core/arch/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
ifeq ($(HAVE_CUDA),1)
CUDA_SRC := $(wildcard cuda/*.cu)
CORE_OBJ += $(CUDA_SRC:%.cu=$(BUILD)/%.o)
else
CORE_OBJ += $(BUILD)/cuda/none.o
endif
TUI_SRC  := $(wildcard tui/*.c)
TUI_OBJ  := $(TUI_SRC:%.c=$(BUILD)/%.o)
# tui/ without main(), for the tests of the workbench's pure parts (layout, keys, images)
TUI_LIB  := $(BUILD)/libvisage-tui.a
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libvisage.a
BIN      := $(BUILD)/visage

.PHONY: all check-deps deps models demo test test-gpu test-unit test-san help install clean distclean bench gpu-bundle
all: check-deps $(BIN) $(TEST_BIN)

check-deps:
	@if [ -n "$(strip $(MISSING))" ]; then \
	  echo "visage: missing libraries: $(MISSING). Run 'make deps' (installs the Debian packages)."; \
	  exit 1; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tui/%.o: tui/%.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) $(TUI_CFLAGS) -MMD -MP -c -o $@ $<

$(TUI_LIB): $(filter-out $(BUILD)/tui/main.o,$(TUI_OBJ))
	@rm -f $@
	$(say) AR $@
	$(Q)ar rcs $@ $^

$(BUILD)/%.o: %.cu $(wildcard cuda/*.cuh) core/nn/backend.h
	@mkdir -p $(dir $@)
	$(say) NVCC $<
	$(Q)$(NVCC) $(ALL_NVCCFLAGS) -Icore -MMD -MP -c -o $@ $<

$(LIB): $(CORE_OBJ)
	@rm -f $@
	$(say) AR $@
	$(Q)ar rcs $@ $^

$(BIN): $(TUI_OBJ) $(LIB)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(TUI_OBJ) $(LIB) $(DEP_LIBS) $(TUI_LIBS)
	@[ "$(SAN)" = 1 ] || ln -sf $(BUILD)/visage visage

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(TUI_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) $(TUI_CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(TUI_LIB) $(LIB) \
		$(DEP_LIBS) $(TUI_LIBS)

# GPU tests and benchmarks (tests/test_cuda_*.c, bench/*_gpu.c) link libc, libm, pthreads, a static
# OpenBLAS (for their CPU twins), a static jansson (the face networks' weight manifests) and the
# CUDA libraries only, so that they run on a GPU machine
# that has none of the media libraries; they use no media code.
OPENBLAS_A := $(firstword $(wildcard /usr/lib/$(shell uname -m)-linux-gnu/openblas-pthread/libopenblas.a))
JANSSON_A  := $(firstword $(wildcard /usr/lib/$(shell uname -m)-linux-gnu/libjansson.a))
GPU_LIBS   := $(if $(OPENBLAS_A),$(OPENBLAS_A),-lopenblas) $(if $(JANSSON_A),$(JANSSON_A),-ljansson) \
              $(CUDA_LIBS) -lm -lpthread
GPU_TEST_BIN := $(filter $(BUILD)/tests/test_cuda_%,$(TEST_BIN))
GPU_BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*_gpu.c))
$(GPU_BENCH_BIN): $(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(LIB) $(GPU_LIBS)

$(GPU_TEST_BIN): $(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(LIB) $(GPU_LIBS)

# For a lent GPU machine (bench/gpu_check.sh): the GPU tests and benchmark for sm_90 (H100, H200)
# plus its PTX, built apart in $(BUILD)/gpu90, stripped and xz-compressed into .device/ (which git
# ignores) with the PyTorch reference, the face networks' weights and PPM copies of the faces_gt
# photos the face networks are compared on (test_facenet --write-ppm): small enough to carry.
gpu-bundle: $(BUILD)/tests/test_facenet
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/gpu90 GPU_ARCH=90 \
		$(patsubst $(BUILD)/%,$(BUILD)/gpu90/%,$(GPU_TEST_BIN) $(GPU_BENCH_BIN))
	$(Q)rm -rf .device && mkdir -p .device/models .device/faces
	$(Q)for f in $(patsubst $(BUILD)/%,$(BUILD)/gpu90/%,$(GPU_TEST_BIN) $(GPU_BENCH_BIN)); do \
		strip -o .device/$$(basename $$f) $$f && xz -T2 -6 .device/$$(basename $$f) || exit 1; done
	$(Q)cp ../shared/bench/faceswap_torch_bench.py .device/ 2>/dev/null || true
	$(Q)cp models/*.json models/*.bin models/SHA256SUMS .device/models/ 2>/dev/null || \
		echo "no models/ (make models): the GPU face-network test will skip"
	$(Q)$(BUILD)/tests/test_facenet --write-ppm .device/faces 2>/dev/null || \
		echo "no ../shared/data: the GPU face-network test will skip"
	@du -sh .device && ls -l .device

-include $(CORE_OBJ:.o=.d) $(TUI_OBJ:.o=.d)

# ---- set-up: packages and models --------------------------------------------------------------
deps:
	@sh deps/install.sh

models:
	@sh deps/models.sh

# ---- test, demo -------------------------------------------------------------------------------
test:
	@sh deps/install.sh
	@sh deps/models.sh
	@$(MAKE) --no-print-directory WERROR=1 all
	@$(MAKE) --no-print-directory WERROR=1 SAN=1 all
	@sh tests/run.sh $(BUILD) build-san

# the GPU tests alone (each CUDA operation against its CPU twin, whole training steps, graphs,
# resuming across devices); they print what they measured
test-gpu:
	@$(MAKE) --no-print-directory WERROR=1 $(GPU_TEST_BIN)
	@sh tests/run.sh --gpu $(BUILD)

demo:
	@sh deps/install.sh
	@sh deps/models.sh
	@$(MAKE) --no-print-directory all
	@sh deps/demo.sh $(BUILD)

BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(LIB) $(DEP_LIBS)

bench: all $(BENCH_BIN)
	@sh bench/extract.sh
	@sh bench/train_cpu.sh
	@sh bench/train_gpu.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/visage/models
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/visage
	install -m 644 man/visage.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/visage.ini.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 models/*.json models/*.bin models/LICENSE.face-api models/SHA256SUMS $(DESTDIR)$(PREFIX)/share/visage/models/
	install -D -m 644 contrib/visage.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/visage
	install -m 755 contrib/visage-tmux $(DESTDIR)$(PREFIX)/bin/visage-tmux

help:
	@echo "make          build visage ($(BIN)) and the tests"
	@echo "make deps     install the Debian/Ubuntu packages visage needs (apt-get, sudo if not root)"
	@echo "make models   fetch the face-network weights (npm pack @vladmandic/face-api, sha256 checked)"
	@echo "make demo     deps + models + build, then the project demo/ with the sample photos' faces"
	@echo "make test     deps + models + build, then every test (also under ASan/UBSan)"
	@echo "make test-gpu the GPU tests alone (CUDA against the CPU; skipped without a GPU)"
	@echo "make gpu-bundle  the GPU tests, benchmark, models and test photos in .device/ (bench/gpu_check.sh)"
	@echo "make bench    extraction speed benchmark (results go to BENCHMARKS.md by hand)"
	@echo "make install  PREFIX=$(PREFIX)"

clean:
	rm -rf build build-san visage

distclean: clean
	rm -rf models .cache
