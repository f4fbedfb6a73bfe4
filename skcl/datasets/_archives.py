"""The image archives' files, read from a folder or from the archive itself."""

import hashlib
import os
import posixpath
import tarfile
import zipfile
from urllib.request import urlopen

from ._mnist import _atomic_write


class _Folder:
    """An extracted archive: its files under ``root``."""

    def __init__(self, root):
        self.where = root

    def read(self, name):
        path = os.path.join(self.where, *name.split("/"))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing.")
        with open(path, "rb") as f:
            return f.read()

    def names(self, folder):
        path = os.path.join(self.where, *folder.split("/"))
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}{os.sep} is missing.")
        return sorted(os.listdir(path))

    def close(self):
        """Nothing to release: each file was closed once read."""


class _Packed:
    """An archive read in place (``.tar.gz`` or ``.zip``), never extracted."""

    def __init__(self, path, top):
        self.where, self.top = path, top
        if path.endswith(".zip"):
            self._file = zipfile.ZipFile(path)
            self._members = {n.rstrip("/"): n for n in self._file.namelist()}
        else:
            self._file = tarfile.open(path, "r:gz")
            self._members = {m.name: m for m in self._file.getmembers() if m.isfile()}

    def read(self, name):
        member = self._members.get(posixpath.join(self.top, name))
        if member is None:
            raise FileNotFoundError(f"{self.where} has no file {self.top}/{name}.")
        if isinstance(self._file, zipfile.ZipFile):
            return self._file.read(member)
        return self._file.extractfile(member).read()

    def names(self, folder):
        prefix = posixpath.join(self.top, folder) + "/"
        found = {
            name[len(prefix) :].split("/")[0]
            for name in self._members
            if name.startswith(prefix) and len(name) > len(prefix)
        }
        if not found:
            raise FileNotFoundError(f"{self.where} has no folder {self.top}/{folder}/.")
        return sorted(found)

    def close(self):
        self._file.close()


def open_archive(data_home, folder, archive, url, md5, download_if_missing, what):
    """The files of ``folder``: extracted in ``data_home``, else read from
    ``archive`` there, else downloaded (checked by its ``md5``) when allowed."""
    root = os.path.join(data_home, folder)
    if os.path.isdir(root):
        return _Folder(root)
    path = os.path.join(data_home, archive)
    if not os.path.isfile(path):
        if not download_if_missing:
            raise FileNotFoundError(
                f"{what} not found: neither {root}{os.sep} nor {path}. Put the "
                f"official archive {archive} (or the folder {folder}/ it "
                "extracts to) there, or pass data_home=<its folder> (the default "
                "folder is $SKCL_DATA, else ~/skcl_data; on the command line "
                "--data-home or SKCL_DATA), or allow download_if_missing=True "
                "with internet access."
            )
        _download(url, md5, path)
    return _Packed(path, folder)


def _download(url, md5, path):
    try:
        with urlopen(url, timeout=60) as response:
            content = response.read()
    except OSError as exc:
        raise OSError(f"Could not download {url}: {exc}") from exc
    digest = hashlib.md5(content).hexdigest()
    if digest != md5:
        raise OSError(f"{url} came with md5 {digest}, expected {md5}; not kept.")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _atomic_write(path, lambda f: f.write(content))
