"""The box's printable label sheet (``label.html`` in the state directory, ``vci label --html``):
device id, label code, Wi-Fi name and key, the page's address, and two QR codes made with segno:
one that joins the box's Wi-Fi (the ``WIFI:T:WPA;S:...;P:...;;`` text that phone and tablet
cameras take) and one that opens the page. One HTML file with the QR codes inline as SVG: it
prints from any browser, with nothing to fetch.
"""

from __future__ import annotations

import html

import segno

from firmware_py.gateway.firstboot import WIFI_ADDRESS, WifiIdentity, wifi_qr_text

QR_ERROR = "m"
"""error correction level M (15 %): a label on a workshop box gets scratched"""
QR_SCALE = 4
"""SVG units per module"""


def page_url(identity: WifiIdentity) -> str:
    return f"http://{identity.hostname}.local/"


def qr_svg(text: str) -> str:
    """``text`` as a QR code, an inline SVG element."""
    return str(segno.make(text, error=QR_ERROR, micro=False).svg_inline(scale=QR_SCALE))


def label_html(identity: WifiIdentity, device: str, label_code: str) -> str:
    """The label sheet as one printable HTML page."""
    e = html.escape
    rows = (
        ("Device id", device),
        ("Label code", label_code),
        ("Wi-Fi name (SSID)", identity.ssid),
        ("Wi-Fi key (WPA2)", identity.passphrase),
        ("Page", f"{page_url(identity)}  (or http://{WIFI_ADDRESS}/)"),
    )
    table = "\n".join(f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>" for name, value in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>VCI box {e(device)}</title>
<style>
body {{ font-family: sans-serif; margin: 1cm; }}
.label {{ border: 1px solid #000; padding: 0.5cm; width: 12cm; }}
th {{ text-align: left; padding-right: 0.5cm; font-weight: normal; }}
td {{ font-family: monospace; font-size: 120%; }}
figure {{ display: inline-block; margin: 0.3cm 0.6cm 0 0; text-align: center; }}
figcaption {{ font-size: 80%; }}
</style></head>
<body><div class="label">
<h1>VCI box {e(device)}</h1>
<table>
{table}
</table>
<figure id="wifi-qr">{qr_svg(wifi_qr_text(identity))}<figcaption>Join the box's Wi-Fi</figcaption></figure>
<figure id="page-qr">{qr_svg(page_url(identity))}<figcaption>Open the box's page</figcaption></figure>
<p>Claim the box on the portal with its device id and label code; pair a tablet with the
label code or the box's button.</p>
</div></body></html>
"""
