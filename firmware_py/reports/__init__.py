"""Reports a workshop hands over or files: the emissions check (OBD readiness, MIL, DTCs, CALID/
CVN, exhaust limit values) and the vehicle test report (every ECU's fault memory, battery,
service items). A report is a plain data structure (:mod:`.model`), which is also its JSON form;
the tablet page renders it as HTML and :mod:`.pdf` renders it as PDF. Nothing here talks to the
car: the gateway's report jobs read the car and hand the readings to the builders here."""
