# canhgac: build and install without a package manager.
#
#   make                                  # cargo build --release --locked
#   sudo make install                     # into /usr (PREFIX) and /etc
#   make install DESTDIR=/tmp/stage       # staged, e.g. for packaging
#   make deb                              # .deb (packaging/deb/build.sh; target/debian/)
#   make test-deb                         # the .deb installed in a throwaway root (root)
#   make check-systemd                    # systemd/check.sh on the built binary
#
# `make install` never builds as root if the binary is already there: build as
# your user first (`make`), then `sudo make install`. It installs:
#   $(BINDIR)/canhgac
#   $(UNITDIR)/canhgac.service         (Exec paths rewritten to $(BINDIR))
#   $(SYSUSERSDIR)/canhgac.conf        (user canhgac, member of adm)
#   $(TMPFILESDIR)/canhgac.conf        (/var/lib/canhgac, /etc/canhgac/rules.d)
#   $(DOCDIR)/                         (install.md, README.md, rules.md, example config)
#   $(MANDIR)/man1/canhgac*.1          (generated from the CLI)
#   bash, zsh and fish completions     (generated from the CLI)
# The rules are built into the binary (`canhgac rules list`): no copies of
# them are installed, as none would be read.
#   $(SYSCONFDIR)/canhgac/canhgac.toml (from canhgac.example.toml, only if absent)
#   $(SYSCONFDIR)/canhgac/rules.d/     (local rules)
# Then, on the target system: systemd-sysusers, systemd-tmpfiles --create,
# systemctl daemon-reload, systemctl enable --now canhgac (docs/install.md).

PREFIX      ?= /usr
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share
SYSCONFDIR  ?= /etc
LIBDIR_SD   ?= $(PREFIX)/lib
UNITDIR     ?= $(LIBDIR_SD)/systemd/system
SYSUSERSDIR ?= $(LIBDIR_SD)/sysusers.d
TMPFILESDIR ?= $(LIBDIR_SD)/tmpfiles.d
DOCDIR      ?= $(DATADIR)/doc/canhgac
MANDIR      ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(DATADIR)/zsh/vendor-completions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d

CARGO            ?= cargo
CARGO_TARGET_DIR ?= target
BIN              := $(CARGO_TARGET_DIR)/release/canhgac
EXAMPLE_CONFIG   := canhgac.example.toml

INSTALL ?= install

.PHONY: all build install uninstall deb test-deb check-systemd clean

all: build

build:
	$(CARGO) build --release --locked

# Built only when missing, so that `sudo make install` after `make` does not
# run cargo as root.
$(BIN):
	$(CARGO) build --release --locked

install: $(BIN)
	$(INSTALL) -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/canhgac
	$(INSTALL) -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/bin/canhgac|$(BINDIR)/canhgac|g' \
	    -e 's|/usr/share/doc/canhgac|$(DOCDIR)|g' \
	    -e 's|/etc/canhgac|$(SYSCONFDIR)/canhgac|g' \
	    systemd/canhgac.service > $(DESTDIR)$(UNITDIR)/canhgac.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/canhgac.service
	$(INSTALL) -m 0644 systemd/canhgac-syslog.socket $(DESTDIR)$(UNITDIR)/canhgac-syslog.socket
	$(INSTALL) -D -m 0644 systemd/canhgac.sysusers $(DESTDIR)$(SYSUSERSDIR)/canhgac.conf
	$(INSTALL) -D -m 0644 systemd/canhgac.tmpfiles $(DESTDIR)$(TMPFILESDIR)/canhgac.conf
	$(INSTALL) -d -m 0755 $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0644 docs/install.md README.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 rules/README.md $(DESTDIR)$(DOCDIR)/rules.md
	$(INSTALL) -d -m 0755 $(DESTDIR)$(MANDIR)/man1
	$(BIN) generate man $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -d -m 0755 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(BIN) generate completions bash > $(DESTDIR)$(BASHCOMPDIR)/canhgac
	$(BIN) generate completions zsh > $(DESTDIR)$(ZSHCOMPDIR)/_canhgac
	$(BIN) generate completions fish > $(DESTDIR)$(FISHCOMPDIR)/canhgac.fish
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/canhgac/rules.d
	@if [ -f $(EXAMPLE_CONFIG) ]; then \
	    $(INSTALL) -m 0644 $(EXAMPLE_CONFIG) $(DESTDIR)$(DOCDIR)/$(EXAMPLE_CONFIG); \
	    if [ -e $(DESTDIR)$(SYSCONFDIR)/canhgac/canhgac.toml ]; then \
	        echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/canhgac/canhgac.toml (new example: $(DOCDIR)/$(EXAMPLE_CONFIG))"; \
	    else \
	        echo "installing $(DESTDIR)$(SYSCONFDIR)/canhgac/canhgac.toml"; \
	        $(INSTALL) -m 0640 $(EXAMPLE_CONFIG) $(DESTDIR)$(SYSCONFDIR)/canhgac/canhgac.toml; \
	    fi; \
	else \
	    echo "warning: $(EXAMPLE_CONFIG) not found: no $(SYSCONFDIR)/canhgac/canhgac.toml installed" >&2; \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
	    echo; \
	    echo "Installed. Next, as root (docs/install.md):"; \
	    echo "  systemd-sysusers canhgac.conf"; \
	    echo "  systemd-tmpfiles --create canhgac.conf"; \
	    echo "  canhgac check --config $(SYSCONFDIR)/canhgac/canhgac.toml"; \
	    echo "  systemctl daemon-reload && systemctl enable --now canhgac"; \
	fi

# Leaves $(SYSCONFDIR)/canhgac (your configuration), /var/lib/canhgac (the
# incident store) and the canhgac user in place.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/canhgac
	rm -f $(DESTDIR)$(UNITDIR)/canhgac.service $(DESTDIR)$(UNITDIR)/canhgac-syslog.socket
	rm -f $(DESTDIR)$(SYSUSERSDIR)/canhgac.conf
	rm -f $(DESTDIR)$(TMPFILESDIR)/canhgac.conf
	rm -rf $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(MANDIR)/man1/canhgac.1 $(DESTDIR)$(MANDIR)/man1/canhgac-*.1
	rm -f $(DESTDIR)$(BASHCOMPDIR)/canhgac $(DESTDIR)$(ZSHCOMPDIR)/_canhgac $(DESTDIR)$(FISHCOMPDIR)/canhgac.fish

deb:
	packaging/deb/build.sh

test-deb:
	packaging/deb/test.sh

check-systemd: $(BIN)
	systemd/check.sh --bin $(BIN)

clean:
	$(CARGO) clean
