# emorec: `make run` starts the app, `make test` lints and runs the test suite. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The dataset the app opens first: $EMOREC_DATA, else CK+ beside the project when present, else ./data.
EMOREC_DATA ?= $(if $(wildcard ../shared/data/ckplus),../shared/data/ckplus,data)
export EMOREC_DATA

.PHONY: run test lint install install-dev bench clean study-models emorec-model cross-dataset scan screenshots

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	$(PY) -m streamlit run app.py --server.port 8501

lint: install-dev
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

bench: install
	$(PY) -m emorec bench

clean:
	rm -rf $(VENV) .pytest_cache

# Reproduce the shipped study variants: cross-validate (both protocols), train on all of CK+, then
# test on FER2013 PublicTest.
CKPLUS ?= ../shared/data/ckplus
STUDY_VARIANTS := baseline tuned_full tuned_mtcnn
study-models: install
	for v in $(STUDY_VARIANTS); do \
	  $(PY) -m emorec evaluate --variant $$v --data $(CKPLUS) --protocol subject-kfold && \
	  $(PY) -m emorec evaluate --variant $$v --data $(CKPLUS) --protocol image-kfold && \
	  $(PY) -m emorec train --variant $$v --data $(CKPLUS) && \
	  $(PY) -m emorec evaluate --variant $$v --protocol fer2013-publictest --data $(FER)/validation || exit 1; \
	done

# emorec's own model from the shipped stage-1 network (models/emorec/pretrain/pretrained.keras; stage 1
# is `python -m emorec pretrain --data $(FER)/train`): stage 1b on FER+ votes and LFW's training people
# (~25 min), the subject-grouped cross-validation of the CK+ fine-tuning with the weight-mixing scan
# chosen over held-out domains (~35 min), the shipped model, then PublicTest and the cross-dataset benchmark.
FER ?= ../shared/data/fer2013
CK48 ?= ../shared/data/ck48
DATA ?= ../shared/data
STAGE2 := --data $(CKPLUS) --ck48 $(CK48) --fer $(FER)/train --transfer $(DATA)
emorec-model: install
	$(PY) -m emorec pretrain-wild --ferplus $(DATA)/ferplus/labels.csv --fer $(FER)/train --lfw $(DATA)/lfw_expressions
	$(PY) -m emorec evaluate --variant emorec $(STAGE2)
	$(PY) -m emorec train --variant emorec $(STAGE2)
	$(PY) -m emorec evaluate --variant emorec --protocol fer2013-publictest --data $(FER)/validation
	$(PY) -m emorec evaluate --variant emorec --protocol cross-dataset --data $(DATA)

# Every shipped model on the public sets none trained on (FER2013 and FER+ PublicTest, LFW's validation
# people, London), recorded in the cards; a few minutes.
cross-dataset: install
	for v in $(STUDY_VARIANTS) emorec; do $(PY) -m emorec evaluate --variant $$v --protocol cross-dataset --data $(DATA) || exit 1; done
	$(PY) -m emorec models --cross-dataset --markdown

# emorec's shipped Talos scan: 200 configurations of the study's space on MTCNN crops, in 8 shards run as
# Ray tasks (~12-20 min each on one core; a finished shard is kept and never run again), merged as they finish.
SCAN := emorec-mtcnn-scan
scan: install
	$(PY) -m emorec tune --space emorec/spaces/study-fast.toml --variant mtcnn --data $(CKPLUS) --rounds 200 --shards 8
	$(PY) -m emorec tune-report models/tuning/$(SCAN).csv

# README screenshots of every page, from the running app (needs chromium).
screenshots: install-dev
	$(PY) -m tests.screenshots
