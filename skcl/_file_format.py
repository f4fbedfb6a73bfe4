"""A safe file format: tensors and typed JSON in one safetensors file, no pickle.

Two layers, neither of which knows what it stores:

- a typed JSON codec, :class:`Encoder` and :class:`Decoder`: nested Python
  values become JSON whose every object has one key naming its kind, with the
  tensors and numeric arrays set apart, and back. A class is stored by name and
  decoded only from the registry the caller passes, never imported;
- a checked container, :func:`write` and :func:`read`: one safetensors file
  whose ``__metadata__`` holds a format name and version, a SHA-256 digest of
  the content and the JSON document, written atomically and durably.

Reading is bounded: JSON nested deeper than ``MAX_DEPTH`` (64) levels, a
safetensors header over ``MAX_HEADER_BYTES`` (64 MiB), a file over
``MAX_FILE_BYTES`` (16 GiB, as the whole file is read into memory), torch
dtypes outside ``TORCH_DTYPES`` and numpy dtypes of other kinds are refused
with a :class:`FormatError`.
"""

import hashlib
import json
import os
import re
import secrets
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

MAX_DEPTH = 64
MAX_HEADER_BYTES = 64 * 2**20
MAX_FILE_BYTES = 16 * 2**30
TORCH_DTYPES = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_DTYPE_NAMES = {dtype: name for name, dtype in TORCH_DTYPES.items()}
_NUMPY_DTYPE = re.compile(r"[<>|=]?[biufUO]\d{0,12}")
_SCALARS = (bool, int, float, str)
# The payload of each kind: its type, or the length of its list.
_PAYLOADS = {
    "tensor": str,
    "ndarray": str,
    "type": str,
    "device": str,
    "dtype": str,
    "tuple": list,
    "items": list,
    "dict": dict,
    "scalar": 2,
    "array": 3,
    "object": 2,
    "RandomState": 5,
}


class FormatError(ValueError):
    """A file, or a JSON tree, that this format does not accept."""


def qualified_name(cls):
    """Return ``module.QualName``, the name a class has in a file by default."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Encoder:
    """Turn Python values into a typed JSON tree, setting tensors apart.

    Every JSON object of the tree has a single key naming its kind, so that
    decoding never guesses. Tensors (copied to the CPU) and numeric numpy
    arrays go into :attr:`tensors`; one referenced several times is stored
    once, and decodes to one shared object.

    Parameters
    ----------
    class_names : dict
        The name to store for each class; other classes are stored under
        :func:`qualified_name`.
    object_bases : tuple of classes, default=()
        Instances of these classes, and of the classes in ``class_names``, that
        have a ``get_params`` method are stored as objects: their class and
        ``get_params(deep=False)``, to be rebuilt as ``cls(**params)``.

    Attributes
    ----------
    tensors : dict of str to torch.Tensor
        The tensors met so far, each under the path where it was first met.

    Examples
    --------
    >>> import torch
    >>> weight = torch.ones(2)
    >>> encoder = Encoder({})
    >>> tree = encoder.encode({"w": weight, "pair": (weight, 0.5)}, "state")
    >>> tree["dict"]["pair"], list(encoder.tensors)
    ({'tuple': [{'tensor': 'state/w'}, 0.5]}, ['state/w'])
    >>> state = Decoder(encoder.tensors, {}).decode(tree, "state")
    >>> state["w"] is state["pair"][0]
    True
    """

    def __init__(self, class_names, object_bases=()):
        self.class_names = class_names
        self.object_bases = tuple(object_bases)
        self.tensors = {}
        self._seen = {}
        self._depth = 0

    def class_name(self, cls):
        """Return the name stored for the class ``cls``."""
        return self.class_names.get(cls) or qualified_name(cls)

    def encode(self, value, path):
        """Return the JSON tree of ``value``.

        Parameters
        ----------
        value : object
            The value to store.
        path : str
            Where ``value`` is, for messages and for naming its tensors.

        Returns
        -------
        tree : JSON-able object
        """
        if self._depth >= MAX_DEPTH:
            raise ValueError(
                f"Cannot store {path}: it is nested deeper than {MAX_DEPTH} levels."
            )
        self._depth += 1
        try:
            return self._encode(value, path)
        finally:
            self._depth -= 1

    def _encode(self, value, path):
        def sub(item, key):
            return self.encode(item, f"{path}/{key}")

        if value is None or type(value) in _SCALARS:
            return value
        if isinstance(value, np.generic) and value.dtype.kind in "biufU":
            return {"scalar": [value.dtype.str, value.item()]}
        if isinstance(value, torch.Tensor):
            return {"tensor": self._store(value, path)}
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            return {"ndarray": self._store(value, path)}
        if isinstance(value, np.ndarray) and value.dtype.kind in "UO":
            values = [sub(v, i) for i, v in enumerate(value.ravel().tolist())]
            return {"array": [value.dtype.str, list(value.shape), values]}
        if isinstance(value, list):
            return [sub(v, i) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"tuple": [sub(v, i) for i, v in enumerate(value)]}
        if isinstance(value, dict):
            if all(type(k) is str for k in value):
                return {"dict": {k: sub(v, k) for k, v in value.items()}}
            pairs = enumerate(value.items())
            return {"items": [[sub(k, "key"), sub(v, i)] for i, (k, v) in pairs]}
        if isinstance(value, type):
            return {"type": self.class_name(value)}
        if isinstance(value, torch.device):
            return {"device": str(value)}
        if isinstance(value, torch.dtype):
            if value not in _DTYPE_NAMES:
                raise TypeError(
                    f"Cannot store {path}: the dtype {value} is not one of "
                    f"{sorted(TORCH_DTYPES)}."
                )
            return {"dtype": _DTYPE_NAMES[value]}
        if isinstance(value, np.random.RandomState):
            name, keys, pos, has_gauss, cached = value.get_state()
            return {"RandomState": [name, keys.tolist(), pos, has_gauss, cached]}
        if hasattr(value, "get_params") and (
            type(value) in self.class_names or isinstance(value, self.object_bases)
        ):
            try:
                params = value.get_params(deep=False)
            except (AttributeError, RuntimeError, TypeError) as error:
                raise TypeError(
                    f"Cannot store {path}: {type(value).__name__}.get_params "
                    f"failed: {error}"
                ) from error
            params = {k: sub(v, k) for k, v in params.items()}
            return {"object": [self.class_name(type(value)), {"dict": params}]}
        raise TypeError(
            f"Cannot store {path}: values of type {type(value).__name__} are not "
            "supported by skcl's safe format (it stores numbers, strings, tensors, "
            "arrays, lists, tuples, dicts, classes, devices, dtypes, RandomState "
            "and objects rebuilt from their parameters). Use pickle or joblib for "
            "such values."
        )

    def _store(self, value, path):
        if id(value) not in self._seen:
            while path in self.tensors:  # a dict key holding "/" could clash
                path += "'"
            if isinstance(value, np.ndarray):
                native = value.dtype.newbyteorder("=")
                tensor = torch.from_numpy(np.array(value, dtype=native, order="C"))
            else:
                tensor = value.detach().to("cpu", copy=True).contiguous()
            self.tensors[path] = tensor
            self._seen[id(value)] = (value, path)  # keeps the id from being reused
        return self._seen[id(value)][1]


class Decoder:
    """Turn a JSON tree from :class:`Encoder` back into Python values.

    Parameters
    ----------
    tensors : dict of str to torch.Tensor
        The tensors of the file.
    classes : dict of str to class
        The classes the tree may name, by stored name; no other class is
        ever looked up or imported.
    object_bases : tuple of classes, default=()
        Objects are rebuilt only when their class is a subclass of one of
        these.

    Examples
    --------
    >>> import torch
    >>> tree = {"tuple": [{"dtype": "float32"}, {"type": "torch.nn.ReLU"}]}
    >>> Decoder({}, {"torch.nn.ReLU": torch.nn.ReLU}).decode(tree, "value")
    (torch.float32, <class 'torch.nn.modules.activation.ReLU'>)
    >>> Decoder({}, {}).decode({"dtype": "_dynamo"}, "value")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skcl._file_format.FormatError: value: unknown torch dtype '_dynamo'; ...
    """

    def __init__(self, tensors, classes, object_bases=()):
        self.tensors = tensors
        self.classes = classes
        self.object_bases = tuple(object_bases)
        self._arrays = {}
        self._depth = 0

    def resolve(self, name, path):
        """Return the class stored as ``name``, if the registry holds it."""
        if not isinstance(name, str) or name not in self.classes:
            short = str(name).rpartition(".")[2]
            raise FormatError(
                f"{path} names the class {name!r}, which is not one of the "
                "classes this file may name; a file never makes skcl import code. "
                "If you trust this file, pass the class itself: "
                f"load(path, modules=[{short}])."
            )
        return self.classes[name]

    def decode(self, tree, path):
        """Return the value of ``tree``.

        Parameters
        ----------
        tree : JSON-able object
            A tree made by :meth:`Encoder.encode`.
        path : str
            Where ``tree`` is, for messages.

        Returns
        -------
        value : object
        """
        if tree is None or type(tree) in _SCALARS:
            return tree
        if self._depth >= MAX_DEPTH:
            raise _too_deep(path)
        self._depth += 1
        try:
            return self._decode(tree, path)
        finally:
            self._depth -= 1

    def _decode(self, tree, path):
        def sub(item, key):
            return self.decode(item, f"{path}/{key}")

        if isinstance(tree, list):
            return [sub(v, i) for i, v in enumerate(tree)]
        if not (isinstance(tree, dict) and len(tree) == 1):
            raise FormatError(f"{path}: unexpected entry {tree!r:.200}.")
        ((kind, value),) = tree.items()
        payload = _PAYLOADS.get(kind)
        if payload is None:
            raise FormatError(f"{path}: unknown entry kind {kind!r}.")
        if not (
            isinstance(value, payload)
            if isinstance(payload, type)
            else isinstance(value, list) and len(value) == payload
        ):
            raise FormatError(f"{path}: malformed {kind!r} entry {value!r:.200}.")
        if kind == "tensor":
            return self._tensor(value, path)
        if kind == "ndarray":
            return self._arrays.setdefault(value, self._tensor(value, path).numpy())
        if kind == "scalar":
            dtype, item = value
            if type(item) not in _SCALARS:
                raise FormatError(f"{path}: a scalar holds {item!r:.200}.")
            return np.array(item, dtype=_numpy_dtype(dtype, "biufU", 1, path))[()]
        if kind == "array":
            dtype, shape, values = value
            if not (
                isinstance(values, list)
                and isinstance(shape, list)
                and all(type(n) is int and n >= 0 for n in shape)
                and np.prod(shape, dtype=object) == len(values)
            ):
                raise FormatError(f"{path}: malformed array of shape {shape!r:.200}.")
            dtype = _numpy_dtype(dtype, "UO", len(values), path)
            array = np.empty(len(values), dtype=dtype)
            for i, v in enumerate(values):
                array[i] = sub(v, i)
            return array.reshape(shape)
        if kind == "tuple":
            return tuple(sub(v, i) for i, v in enumerate(value))
        if kind == "dict":
            return {k: sub(v, k) for k, v in value.items()}
        if kind == "items":
            if not all(isinstance(p, list) and len(p) == 2 for p in value):
                raise FormatError(f"{path}: items must be [key, value] pairs.")
            return {sub(k, "key"): sub(v, i) for i, (k, v) in enumerate(value)}
        if kind == "type":
            return self.resolve(value, path)
        if kind == "device":
            try:
                return torch.device(value)
            except RuntimeError as error:
                raise FormatError(f"{path}: invalid device {value!r}.") from error
        if kind == "dtype":
            if value not in TORCH_DTYPES:
                raise FormatError(
                    f"{path}: unknown torch dtype {value!r}; the format stores "
                    f"{', '.join(TORCH_DTYPES)} only."
                )
            return TORCH_DTYPES[value]
        if kind == "RandomState":
            name, keys, pos, has_gauss, cached = value
            rng = np.random.RandomState()
            state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
            rng.set_state(state)
            return rng
        name, params = value  # an object
        cls = self.resolve(name, path)
        if not issubclass(cls, self.object_bases):
            bases = " or ".join(base.__name__ for base in self.object_bases)
            raise FormatError(
                f"{path}: {name} is not a {bases or 'class this file may build'}."
            )
        params = sub(params, "params")
        if not (isinstance(params, dict) and all(type(k) is str for k in params)):
            raise FormatError(f"{path}: the parameters must be a dict.")
        return cls(**params)

    def _tensor(self, name, path):
        if name not in self.tensors:
            raise FormatError(
                f"{path} refers to a tensor {name!r} missing from the file."
            )
        return self.tensors[name]


def _numpy_dtype(name, kinds, count, path):
    """Return the numpy dtype ``name`` if it is of ``kinds`` and not too large."""
    try:
        dtype = np.dtype(name) if _NUMPY_DTYPE.fullmatch(str(name)) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in kinds:
        raise FormatError(f"{path}: unexpected array dtype {name!r:.200}.")
    if dtype.itemsize * count > 4 * MAX_HEADER_BYTES:
        raise FormatError(f"{path}: an array of {count} {name} is too large.")
    return dtype


def _too_deep(where):
    return FormatError(f"{where} is nested deeper than {MAX_DEPTH} levels.")


def _check_depth(tree, where):
    """Refuse JSON with lists and objects nested deeper than ``MAX_DEPTH``."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise _too_deep(where)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def _digest(state, tensors):
    digest = hashlib.sha256(state.encode())
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"\0{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _fsync_directory(directory):
    """Flush a directory's entries to disk, where directories can be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write(path, doc, tensors, *, format_name, version):
    """Write a JSON document and tensors to one file, atomically and durably.

    The file is written next to ``path`` under a temporary name, flushed to
    disk, then renamed over ``path``: an existing file is replaced only by a
    complete one, and an interrupted write leaves no temporary file.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    doc : JSON-able object
        The document, nested at most ``MAX_DEPTH`` levels.
    tensors : dict of str to torch.Tensor
        Contiguous CPU tensors sharing no memory.
    format_name : str
        The format's name, checked by :func:`read`.
    version : int
        The format's version, checked by :func:`read`.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "doc.safetensors")
    >>> write(path, {"n": 1}, {"w": torch.ones(2)}, format_name="demo", version=1)
    >>> read(path, format_name="demo", version=1)
    ({'n': 1}, {'w': tensor([1., 1.])})
    >>> read(path, format_name="demo", version=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skcl._file_format.FormatError: ... version '1'; ... reads format version 2 only.
    """
    _check_depth(doc, f"Cannot write {path}: the document")
    state = json.dumps(doc)
    metadata = {
        "format": format_name,
        "format_version": str(version),
        "sha256": _digest(state, tensors),
        "state": state,
    }
    data = safetensors.torch.save(tensors, metadata=metadata)
    header = int.from_bytes(data[:8], "little")
    if header > MAX_HEADER_BYTES or len(data) > MAX_FILE_BYTES:
        raise ValueError(
            f"Cannot write {path}: its header ({header} bytes) or size "
            f"({len(data)} bytes) is over what read accepts ({MAX_HEADER_BYTES} "
            f"and {MAX_FILE_BYTES} bytes)."
        )
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def read(path, *, format_name, version):
    """Return the JSON document and the tensors of a file, checked.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`write`.
    format_name : str
        The format the file must have.
    version : int
        The format version the file must have.

    Returns
    -------
    doc : JSON-able object
    tensors : dict of str to torch.Tensor

    Raises
    ------
    FormatError
        If the file is too large, truncated, not a safetensors file, of another
        format or version, does not match its checksum, or holds invalid or too
        deeply nested JSON.
    """
    invalid = f"{path} is not a valid {format_name} model file"
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise FormatError(
                f"{path} is too large: {size} bytes, over the {MAX_FILE_BYTES} "
                "this format reads."
            )
        data = file.read()
    header = int.from_bytes(data[:8], "little")
    if header > MAX_HEADER_BYTES:
        raise FormatError(
            f"{invalid}: its header would take {header} bytes, over the "
            f"{MAX_HEADER_BYTES} this format reads."
        )
    try:
        tensors = safetensors.torch.load(data)
        metadata = json.loads(data[8 : 8 + header]).get("__metadata__") or {}
    except (safetensors.SafetensorError, ValueError, RecursionError) as error:
        raise FormatError(
            f"{invalid} (truncated, or not a safetensors file): {error}"
        ) from error
    if metadata.get("format") != format_name:
        raise FormatError(
            f"{path} is a safetensors file but not an {format_name} model file."
        )
    found = metadata.get("format_version")
    if found != str(version):
        raise FormatError(
            f"{path} has {format_name} format version {found!r}; this version of "
            f"{format_name} reads format version {version} only."
        )
    state = metadata.get("state", "")
    if metadata.get("sha256") != _digest(state, tensors):
        raise FormatError(
            f"{path} does not match its checksum: the file is corrupted or was "
            "modified after it was saved."
        )
    try:
        doc = json.loads(state)
    except RecursionError as error:
        raise _too_deep(f"The JSON of {path}") from error
    except ValueError as error:
        raise FormatError(f"{path} holds invalid JSON: {error}") from error
    _check_depth(doc, f"The JSON of {path}")
    return doc, tensors
