"""A stand-in for Bloomberg's `blpapi` SDK that replays a recorded terminal.

The real SDK cannot be installed here (it ships from Bloomberg's own index and needs a terminal),
so the tests put this package first on the import path. It is the lowest boundary of the
Bloomberg path: the real `xbbg` package builds every request through it and parses every response
it hands back, exactly as with a live session. Only what xbbg touches for reference (bdp/bds) and
historical (bdh) requests is implemented.

Environment (read when a Session starts):
  BLPAPI_RECORDING   a JSON recording (see tests/terminal/record.py); unset: no terminal, start()
                     fails as it does when no Bloomberg service answers on localhost:8194
  BLPAPI_FAIL_SENDS  "3,4": the 3rd and 4th requests this process sends fail (a dropped link)
  BLPAPI_DIE_AFTER   N: the process is killed with SIGKILL when request N+1 is sent
  BLPAPI_REQUEST_LOG a file that receives one JSON line per request sent (what was asked)
"""

from __future__ import annotations

import json
import os
import queue
import signal

_SENT = 0


class Name(str):
    """Bloomberg's interned name type; a str here."""

    def __new__(cls, value):
        return super().__new__(cls, str(value))


class InvalidStateException(Exception):
    pass


class RequestError(Exception):
    """What a broken link raises when a request is sent."""


class DataType:
    STRING = 8
    FLOAT64 = 6
    SEQUENCE = 15


class Event:
    ADMIN = 1
    SESSION_STATUS = 2
    SUBSCRIPTION_STATUS = 3
    REQUEST_STATUS = 4
    RESPONSE = 5
    PARTIAL_RESPONSE = 6
    SUBSCRIPTION_DATA = 8
    SERVICE_STATUS = 9
    TIMEOUT = 10
    AUTHORIZATION_STATUS = 11
    RESOLUTION_STATUS = 12
    TOPIC_STATUS = 13
    TOKEN_STATUS = 14
    REQUEST = 15
    UNKNOWN = -1

    def __init__(self, event_type: int, messages: list):
        self._type = event_type
        self._messages = messages

    def eventType(self) -> int:
        return self._type

    def __iter__(self):
        return iter(self._messages)


class Element:
    """A node of a request or response: a scalar, an array, or a sequence of named children."""

    def __init__(self, name, value=None, *, array: bool = False):
        self._name = Name(name)
        self._array = array
        if array:
            self._items = [] if value is None else [_wrap(name, v) for v in value]
        elif isinstance(value, dict):
            self._children = {k: _wrap(k, v) for k, v in value.items()}
        self._value = value

    # -- reading
    def name(self) -> Name:
        return self._name

    def isArray(self) -> bool:
        return self._array

    def isComplexType(self) -> bool:
        return not self._array and hasattr(self, "_children")

    def isNull(self) -> bool:
        return not self._array and not self.isComplexType() and self._value is None

    def datatype(self) -> int:
        if self.isComplexType():
            return DataType.SEQUENCE
        return DataType.STRING if isinstance(self._value, str) else DataType.FLOAT64

    def hasElement(self, name, excludeNullElements: bool = False) -> bool:
        return self.isComplexType() and str(name) in self._children

    def getElement(self, name) -> Element:
        if isinstance(name, int):
            return list(self._children.values())[name]
        if not self.hasElement(name):
            raise KeyError(f"no element {name!r} in {self._name}")
        return self._children[str(name)]

    def elements(self):
        return list(self._children.values()) if self.isComplexType() else []

    def numElements(self) -> int:
        return len(self.elements())

    def values(self):
        if self._array:
            return list(self._items)
        return [self]

    def numValues(self) -> int:
        return len(self._items) if self._array else 1

    def getValue(self, index: int = 0):
        if self._array:
            item = self._items[index]
            return item if item.isComplexType() else item._value
        return self._value

    def getValueAsElement(self, index: int = 0) -> Element:
        return self._items[index]

    def getValueAsString(self, index: int = 0) -> str:
        return str(self.getValue(index))

    def getElementAsString(self, name) -> str:
        return str(self.getElement(name).getValue())

    def getElementValue(self, name):
        return self.getElement(name).getValue()

    def toPy(self):
        if self._array:
            return [v.toPy() if isinstance(v, Element) else v for v in self._items]
        if self.isComplexType():
            return {k: v.toPy() for k, v in self._children.items()}
        return self._value

    # -- writing (requests)
    def setElement(self, name, value) -> None:
        self._children[str(name)] = _wrap(name, value)

    def appendElement(self) -> Element:
        item = Element(self._name, {})
        self._items.append(item)
        return item

    def appendValue(self, value) -> None:
        self._items.append(_wrap(self._name, value))

    def __str__(self) -> str:
        return json.dumps(self.toPy(), default=str)


def _wrap(name, value):
    if isinstance(value, Element):
        return value
    if isinstance(value, list):
        return Element(name, value, array=True)
    return Element(name, value)


_REQUEST_ARRAYS = ("securities", "fields", "overrides")


class Request:
    def __init__(self, operation: str):
        self._operation = operation
        self._root = Element(operation, {})
        for name in _REQUEST_ARRAYS:
            self._root._children[name] = Element(name, [], array=True)

    def set(self, name, value) -> None:
        self._root.setElement(name, value)

    def append(self, name, value) -> None:
        self._root.getElement(name).appendValue(value)

    def getElement(self, name) -> Element:
        return self._root.getElement(name)

    def hasElement(self, name) -> bool:
        return self._root.hasElement(name)

    def asElement(self) -> Element:
        return self._root

    def operation(self) -> str:
        return self._operation

    def asked(self) -> dict:
        """What was asked, as plain data (the recording is keyed on it)."""
        data = self._root.toPy()
        data["overrides"] = {o["fieldId"]: str(o["value"]) for o in data["overrides"]}
        data["operation"] = self._operation
        return data

    def __str__(self) -> str:
        return json.dumps(self.asked(), default=str)


class Service:
    def __init__(self, name: str):
        self._name = name

    def name(self) -> str:
        return self._name

    def createRequest(self, operation: str) -> Request:
        return Request(operation)

    def isValid(self) -> bool:
        return True


class Message:
    def __init__(self, message_type: str, body: dict, correlation_id=None):
        self._type = Name(message_type)
        self._root = Element(message_type, body)
        self._cid = correlation_id

    def messageType(self) -> Name:
        return self._type

    def hasElement(self, name, excludeNullElements: bool = False) -> bool:
        return self._root.hasElement(name)

    def getElement(self, name) -> Element:
        return self._root.getElement(name)

    def asElement(self) -> Element:
        return self._root

    def correlationIds(self) -> list:
        return [self._cid]

    def correlationId(self, index: int = 0):
        return self._cid

    def toPy(self):
        return self._root.toPy()

    def __str__(self) -> str:
        return str(self._root)


class CorrelationId:
    _next = 0

    def __init__(self, value=None):
        CorrelationId._next += 1
        self._value = CorrelationId._next if value is None else value

    def value(self):
        return self._value


class EventQueue:
    def __init__(self):
        self._q: queue.Queue = queue.Queue()

    def put(self, event: Event) -> None:
        self._q.put(event)

    def tryNextEvent(self):
        try:
            return self._q.get_nowait()
        except queue.Empty:
            return None

    def nextEvent(self, timeout: int = 0):
        try:
            return self._q.get(timeout=(timeout / 1000) if timeout else None)
        except queue.Empty:
            return Event(Event.TIMEOUT, [])

    def purge(self) -> None:
        self._q = queue.Queue()


class SessionOptions:
    def __init__(self):
        self.host, self.port = "localhost", 8194

    def setServerHost(self, host):
        self.host = host

    def setServerPort(self, port):
        self.port = port

    def setServerAddress(self, host, port, index=0):
        self.host, self.port = host, port

    def setNumStartAttempts(self, numStartAttempts=1):
        pass

    def setAutoRestartOnDisconnection(self, autoRestart=True):
        pass

    def setSessionIdentityOptions(self, *args, **kwargs):
        pass

    def setTlsOptions(self, *args, **kwargs):
        pass


class TlsOptions:
    pass


class SubscriptionList:
    pass


class EventDispatcher:
    def __init__(self, *args, **kwargs):
        pass


class Logger:
    SEVERITY_OFF, SEVERITY_FATAL, SEVERITY_ERROR, SEVERITY_WARN = 0, 1, 2, 3
    SEVERITY_INFO, SEVERITY_DEBUG, SEVERITY_TRACE = 4, 5, 6

    @staticmethod
    def registerCallback(*args, **kwargs):
        pass


class VersionInfo:
    @staticmethod
    def versionIdentifier():
        return "recorded-terminal"

    runtimeVersion = headerVersion = versionIdentifier


class Session:
    def __init__(
        self, options: SessionOptions | None = None, eventHandler=None, eventDispatcher=None
    ):
        self._options = options or SessionOptions()
        self._terminal = None

    def start(self) -> bool:
        path = os.environ.get("BLPAPI_RECORDING")
        if not path:  # no terminal answers
            return False
        from ._terminal import RecordedTerminal

        self._terminal = RecordedTerminal(path)
        return True

    def stop(self) -> None:
        self._terminal = None

    def isValid(self) -> bool:
        return self._terminal is not None

    def openService(self, name: str) -> bool:
        return self._terminal is not None

    def getService(self, name: str) -> Service:
        return Service(name)

    def sendRequest(
        self, request: Request, identity=None, correlationId=None, eventQueue=None, requestLabel=""
    ):
        global _SENT
        if self._terminal is None:
            raise InvalidStateException("session not started")
        _SENT += 1
        die_after = os.environ.get("BLPAPI_DIE_AFTER")
        if die_after and int(die_after) < _SENT:
            os.kill(os.getpid(), signal.SIGKILL)
        asked = request.asked()
        log_file = os.environ.get("BLPAPI_REQUEST_LOG")
        if log_file:
            with open(log_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asked, sort_keys=True, default=str) + "\n")
        failing = {int(x) for x in os.environ.get("BLPAPI_FAIL_SENDS", "").split(",") if x.strip()}
        if _SENT in failing:
            raise RequestError(f"request {_SENT}: connection to the terminal was lost")
        messages = self._terminal.answer(asked)
        queue_ = eventQueue if eventQueue is not None else EventQueue()
        for k, (kind, body) in enumerate(messages):
            last = k == len(messages) - 1
            queue_.put(
                Event(
                    Event.RESPONSE if last else Event.PARTIAL_RESPONSE,
                    [Message(kind, body, correlationId)],
                )
            )
        return correlationId


__version__ = "3.99.0+recorded"
