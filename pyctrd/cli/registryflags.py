"""pyctr's registry verbs on the command line (pull, push, save, tag, untag, commit)
and run/create's --pull; no D-Bus code here (pyctrd.cli.parser's rule)."""

from __future__ import annotations

import argparse
from typing import Any

PULL_POLICIES = ("missing", "always", "never")


def _transfer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-verify", choices=("true", "false"), metavar="BOOL",
                   help="check the registry's TLS certificate (default true)")
    p.add_argument("--creds", metavar="USER:PASSWORD",
                   help="credentials for the registry (never shown in ps)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def add_pull_flag(p: argparse.ArgumentParser) -> None:
    """run/create: --pull=missing|always|never (podman's default missing)."""
    p.add_argument("--pull", choices=PULL_POLICIES, default="missing", metavar="POLICY",
                   help="pull the image: missing (default), always or never")
    p.add_argument("--tls-verify", choices=("true", "false"), metavar="BOOL",
                   help="with a pull: check the registry's TLS certificate (default true)")
    p.add_argument("--creds", metavar="USER:PASSWORD", help="with a pull: credentials")


def add_registry_verbs(sub: Any) -> None:
    pull = sub.add_parser("pull", help="fetch an image from a registry; prints its ID")
    _transfer_flags(pull)
    pull.add_argument("--platform", metavar="OS/ARCH", help="default: this machine's")
    pull.add_argument("reference", metavar="IMAGE", help="[REGISTRY/]NAME[:TAG][@DIGEST]")
    pull.set_defaults(handler="registry:cmd_pull")

    push = sub.add_parser("push", help="copy an image to a registry")
    _transfer_flags(push)
    push.add_argument("image", metavar="IMAGE", help="reference, ID or ID prefix")
    push.add_argument("destination", nargs="?", metavar="DESTINATION",
                      help="[REGISTRY/]NAME[:TAG] (default: IMAGE)")
    push.set_defaults(handler="registry:cmd_push")

    save = sub.add_parser("save", help="write an image as an archive")
    save.add_argument("-o", "--output", metavar="FILE", help="default: stdout")
    save.add_argument("--format", default="oci-archive",
                      choices=("oci-archive", "docker-archive"),
                      help="oci-archive (default) or docker-archive")
    save.add_argument("-q", "--quiet", action="store_true", help="(podman's) no effect")
    save.add_argument("image", metavar="IMAGE", help="reference, ID or ID prefix")
    save.set_defaults(handler="registry:cmd_save")

    tag = sub.add_parser("tag", help="give an image more references")
    tag.add_argument("image", metavar="IMAGE", help="reference, ID or ID prefix")
    tag.add_argument("references", nargs="+", metavar="TARGET_NAME")
    tag.set_defaults(handler="registry:cmd_tag")

    untag = sub.add_parser("untag", help="take references from an image (all without NAME)")
    untag.add_argument("image", metavar="IMAGE", help="reference, ID or ID prefix")
    untag.add_argument("references", nargs="*", metavar="NAME")
    untag.set_defaults(handler="registry:cmd_untag")

    commit = sub.add_parser("commit", help="make an image of a container's changes; "
                            "prints its ID")
    commit.add_argument("-c", "--change", action="append", default=[], metavar="CHANGE",
                        help='edit the image config as a Dockerfile line: "CMD …", "ENV '
                        'K=V", "WORKDIR /x", "ENTRYPOINT …", "LABEL k=v", "USER u", '
                        '"EXPOSE 80"')
    commit.add_argument("-m", "--message", default="", help="the commit message")
    commit.add_argument("-a", "--author", default="", help="the image's author")
    commit.add_argument("-p", "--pause", default="true", choices=("true", "false"),
                        metavar="BOOL", help="pause the container while committing "
                        "(default true)")
    commit.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    commit.add_argument("container", metavar="CONTAINER")
    commit.add_argument("image", nargs="?", metavar="IMAGE", help="the new image's name")
    commit.set_defaults(handler="registry:cmd_commit")
