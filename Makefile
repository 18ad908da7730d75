# The two commands: `make run` (set up everything and serve the portal) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint setup

$(VENV)/.installed: requirements.txt requirements-test.txt requirements-notebooks.txt requirements-serving.txt \
		requirements-apps.txt requirements-mysql.txt requirements-sso.txt notebooks/vscode/package-lock.json $(wildcard modelserver/pyproject.toml modelserver/easyai_modelserver/*.py)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-test.txt
	$(PY) -m pip install -q -r requirements-notebooks.txt
	# The local backend's model server (KServe's) and its loaders; copied into the environment, not linked:
	# a task's sandbox sees the environment but not the repository.
	$(PY) -m pip install -q -r requirements-serving.txt
	$(PY) -m pip install -q --force-reinstall --no-deps ./modelserver
	# Streamlit and Gradio for apps on the local backend.
	$(PY) -m pip install -q -r requirements-apps.txt
	if [ -d cli ]; then $(PY) -m pip install -q -e ./cli; fi
	# Sign-on (LDAP, OIDC) where OpenLDAP's headers are installed (python-ldap compiles against them: see the
	# README); without them the portal runs with local accounts and the sign-on tests skip, saying why.
	if pkg-config --exists ldap 2>/dev/null || [ -f /usr/include/ldap.h ]; then $(PY) -m pip install -q -r requirements-sso.txt; fi
	# The test OpenID provider's one package (node-oidc-provider) where npm is installed.
	if command -v npm >/dev/null 2>&1; then npm ci --silent --no-audit --no-fund --prefix testing/oidc || true; fi
	# code-server for VS Code notebooks, into the environment (a task sees it, not the repository), where npm is.
	if command -v npm >/dev/null 2>&1; then sh notebooks/vscode/install.sh $(VENV) || echo "code-server not installed: VS Code notebooks are refused on the local backend"; fi
	# The MySQL driver only where MySQL is used: it needs the client headers (see the README).
	case "$$DATABASE_URL" in mysql*|mariadb*) $(PY) -m pip install -q -r requirements-mysql.txt;; esac
	touch $@

setup: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap

run: setup
	$(PY) manage.py serve

test: $(VENV)/.installed
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
