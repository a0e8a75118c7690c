"""The one exception tree of the firmware.

Third-party exceptions (python-can, can-isotp, udsoncan, doipclient, sqlite3 ...) are
converted to these at the adapter that calls the library, with ``raise ... from err``.
Every message a user can meet says what happened and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from firmware_py.i18n import N_, Text, is_texts

if TYPE_CHECKING:
    from firmware_py.i18n import Language


class VciError(Exception):
    """Base of every error the firmware raises on purpose.

    ``str()`` is English (logs, the CLI's default, ``--json``). An error a user meets in another
    language is raised with a marked template and its values,
    ``SomeError(N_("ECU {ecu} did not answer"), values={"ecu": name})``, so that
    :meth:`localized` and the tablet (``to_dict()["i18n"]``) can show it in the reader's language
    (firmware_py/i18n.py, docs/translating.md). Class-level hints are marked the same way.
    """

    #: Short machine-readable code, used in ``--json`` output and remote messages.
    code = "vci_error"

    #: What the user can do about it; appended to ``str()`` when set.
    hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        values: Mapping[str, object] | None = None,
        hint_values: Mapping[str, object] | None = None,
    ) -> None:
        self.text = Text(message, _kept(values))
        super().__init__(str(self.text) if values else message)
        self.hint_text: Text | None = None
        if hint is not None:
            self.hint_text = Text(hint, _kept(hint_values))
            self.hint = str(self.hint_text) if hint_values else hint
        elif type(self).hint:
            self.hint_text = Text(type(self).hint or "")

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}. {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, object]:
        return {
            "error": self.code,
            "message": super().__str__(),
            "hint": self.hint,
            # the same texts as templates: the tablet shows them in its own language
            "i18n": {
                "message": self.text.to_json(),
                "hint": self.hint_text.to_json() if self.hint_text else None,
            },
        }

    def localized(self, lang: Language) -> str:
        """The message and the hint in ``lang`` (English where the catalogue has no entry)."""
        text = lang.text(self.text)
        if self.hint_text is None:
            return text
        return lang.gettext("{message}. {hint}", message=text, hint=lang.text(self.hint_text))


def error_text(error: object, lang: Language, *, with_hint: bool = True) -> str:
    """An error as :meth:`VciError.to_dict` wrote it (a job's stored result, a box's answer) in
    ``lang`` where it carries its templates (``i18n``), else its English message and hint."""
    if not isinstance(error, Mapping):
        return str(error or "")
    i18n = error.get("i18n") if isinstance(error.get("i18n"), Mapping) else None
    if i18n and i18n.get("message"):
        message = lang.text(Text.from_json(i18n["message"]))
        if not (with_hint and i18n.get("hint")):
            return message
        hint = lang.text(Text.from_json(i18n["hint"]))
        return lang.gettext("{message}. {hint}", message=message, hint=hint)
    parts = [error.get("message"), error.get("hint") if with_hint else None]
    return ". ".join(str(x) for x in parts if x)


def _kept(values: Mapping[str, object] | None) -> dict[str, object]:
    """Values as texts; a :class:`Text` (or a data file's ``{"en": .., "de": ..}``) stays one, to
    be translated with the message."""
    return {k: _value(v) for k, v in (values or {}).items()}


def _value(value: object) -> object:
    if isinstance(value, VciError) and not value.hint:  # a nested reason: translated with it
        return value.text
    return value if isinstance(value, Text) or is_texts(value) else str(value)


class InfoCacheError(VciError):
    """The box's cache of repair information cannot keep what the portal sent."""

    code = "info_cache"


class ConfigError(VciError):
    """The configuration file, an environment variable or a flag is invalid."""

    code = "config_error"


class HardwareError(VciError):
    """The box's own hardware description (hardware/pinout.toml) or its GPIO, ADC or LEDs."""

    code = "hardware_error"


# --- transport -------------------------------------------------------------------------


class TransportError(VciError):
    """The link to the vehicle (CAN, ISO-TP, DoIP, serial adapter) failed."""

    code = "transport_error"


class VehicleNotFoundError(TransportError):
    """No vehicle answered discovery (DoIP) or no ECU answered on the bus (CAN)."""

    code = "vehicle_not_found"
    hint = N_(
        "Check that the box is plugged into the OBD socket, the ignition is on and, for ENET, "
        "that the activation line is enabled"
    )


class ConnectionLostError(TransportError):
    """An established connection to the vehicle broke (TCP reset, bus off, adapter unplugged)."""

    code = "connection_lost"
    hint = N_("Check the OBD connector and the ignition, then repeat the job")


class RoutingActivationError(TransportError):
    """The DoIP entity refused routing activation (ISO 13400-2 table 25 response code)."""

    code = "routing_activation_refused"


class UnknownTargetError(TransportError):
    """The DoIP gateway refused a diagnostic message for a logical address (NACK 0x03), or no
    ISO-TP identifiers are known for the address."""

    code = "unknown_target"
    hint = N_("Check the ECU address (vci scan lists the ECUs that answer)")


class FrameError(TransportError):
    """A frame or message on the wire was malformed (bad header, wrong length, bad sequence)."""

    code = "malformed_frame"


# --- UDS / ECU ---------------------------------------------------------------------------


class EcuError(VciError):
    """An ECU answered wrongly or not at all."""

    code = "ecu_error"


class EcuNotRespondingError(EcuError):
    """No response within P2 / P2* (ISO 14229-2), or the target is unknown to the gateway."""

    code = "ecu_not_responding"
    hint = N_("Check that the ECU is fitted and powered (ignition on), then repeat")


class ResponseDeadlineError(EcuNotRespondingError):
    """The ECU kept answering "response pending" (NRC 0x78) past the request's overall deadline
    (``uds.request_deadline``, ``uds.long_request_deadline``)."""

    code = "ecu_response_deadline"
    hint = N_(
        "The ECU is stuck working on the request: switch the ignition off and on, then repeat "
        "(an interrupted flash: vci flash --resume)"
    )


class NegativeResponseError(EcuError):
    """The ECU sent a negative response (0x7F SID NRC)."""

    code = "negative_response"

    def __init__(
        self,
        service: int,
        nrc: int,
        nrc_name: str,
        *,
        ecu: str | None = None,
        hint: str | None = None,
    ) -> None:
        values = {"ecu": ecu, "service": f"0x{service:02X}", "nrc": f"0x{nrc:02X} {nrc_name}"}
        super().__init__(
            N_("ECU {ecu}: service {service} refused with NRC {nrc}")
            if ecu
            else N_("service {service} refused with NRC {nrc}"),
            hint=hint,
            values={k: v for k, v in values.items() if v is not None},
        )
        self.service = service
        self.nrc = nrc
        self.nrc_name = nrc_name
        self.ecu = ecu

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out.update(service=self.service, nrc=self.nrc, nrc_name=self.nrc_name, ecu=self.ecu)
        return out


class UnexpectedResponseError(EcuError):
    """The ECU's response could not be interpreted (wrong length, wrong echo, wrong SID)."""

    code = "unexpected_response"


class SecurityAccessError(EcuError):
    """Security access (0x27) failed: no algorithm for the ECU, or key refused."""

    code = "security_access_failed"


# --- gateway -----------------------------------------------------------------------------


class StorageError(VciError):
    """The state database could not be read or written."""

    code = "storage_error"


class EntitlementError(VciError):
    """The caller's tickets do not allow the job (reason and the tariff that would)."""

    code = "not_entitled"


class TicketError(VciError):
    """A ticket is malformed, forged, expired, revoked or bound to another device or VIN."""

    code = "ticket_invalid"


class PreconditionError(VciError):
    """A job's precondition is not met (vehicle connected, battery voltage, ECU busy)."""

    code = "precondition_failed"


class FlashError(VciError):
    """Programming failed or was refused; the message states the ECU's state."""

    code = "flash_failed"


class PackageError(FlashError):
    """A flash package is malformed, corrupt, or its signature does not verify."""

    code = "package_invalid"


class UpdateError(VciError):
    """A software update of the box was refused or could not be fetched or installed; the box
    keeps running the software it has."""

    code = "update_failed"


class DownloadInterrupted(UpdateError):
    """An update's download broke off; the bytes fetched are kept and it goes on later."""

    code = "update_interrupted"


# --- portal link -------------------------------------------------------------------------


class EnrolmentError(VciError):
    """Enrolment with the portal (the box's certificate): a request or a claim that the portal
    refused, or an answer from it that the box cannot use (docs/claiming.md)."""

    code = "enrolment_refused"

    #: the HTTP status the portal's enrolment server answers with
    status = 400

    def __init__(self, message: str, *, status: int = 400, **texts: Any) -> None:
        super().__init__(message, **texts)  # hint, values, hint_values as VciError takes them
        self.status = status


# --- portal accounts, credit and purchases (portal/accounts.py, portal/credit.py) ----------


class PortalError(VciError):
    """The portal refused an account, login, credit or purchase request (docs/portal.md)."""

    code = "portal_refused"


class SignupError(PortalError):
    """A workshop's or a user's data cannot be accepted (missing, malformed or taken)."""

    code = "signup_refused"


class LoginRefused(PortalError):
    """Wrong login name, password or second factor; or the login is locked for a while. The
    message is the same for an unknown login name and a wrong password."""

    code = "login_refused"
    hint = N_("Check the login name, the password and the authenticator code, then try again")


class LoginLocked(LoginRefused):
    """Too many failed logins for one login name: refused until the lock period ends."""

    code = "login_locked"


class SecondFactorNeeded(LoginRefused):
    """The password was right and the user has a second factor: the login continues with the
    authenticator's code (portal/login.py ``second_factor``)."""

    code = "second_factor_needed"
    hint = N_("Enter the code your authenticator app shows")

    def __init__(self, message: str, *, user_id: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.user_id = user_id


class NotPermitted(PortalError):
    """The user may not do this: another workshop's data, a role that lacks the right, or a
    disabled workshop."""

    code = "not_permitted"


class WorkshopDisabled(NotPermitted):
    """The portal's operator disabled the workshop: its users cannot log in or buy."""

    code = "workshop_disabled"
    hint = N_("Contact the portal's operator")


class PaymentError(PortalError):
    """A top-up could not be booked (bad amount, a bank reference booked before)."""

    code = "payment_refused"


class InsufficientCredit(PortalError):
    """The workshop's prepaid credit does not cover the price: nothing was bought or debited."""

    code = "credit_insufficient"
    hint = N_("Top up the credit by bank transfer; the operator books it when it arrives")


class TicketNeeded(PortalError):
    """A remote job needs a ticket the workshop has not bought for this box: none of its
    purchases for the box is valid now and includes the job's scope (portal/sessions.py)."""

    code = "ticket_needed"
    hint = N_("Buy a ticket for this box on the portal (Buy a ticket), e.g. Basic for 1 day")


# --- the portal's information services (portal/content/) ----------------------------------


class ContentError(PortalError):
    """A content set cannot be imported: each problem names its file and line; nothing of it was
    loaded and the portal's previous content is unchanged (docs/content-format.md)."""

    code = "content_invalid"
    hint = N_("Correct the files named above and import the whole set again")

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        shown = problems[:50] + (
            [f"... and {len(problems) - 50} more"] if len(problems) > 50 else []
        )
        super().__init__(
            f"the content set has {len(problems)} problem(s):\n  " + "\n  ".join(shown), hint=hint
        )
        self.problems = problems


class NotEntitled(PortalError):
    """The workshop holds no valid ticket that includes repair information."""

    code = "not_entitled"
    hint = N_(
        "Buy an Informationssuche or Basic ticket for one of the workshop's boxes (Buy a ticket)"
    )
