"""ECU programming: signed flash packages (``package``), programming plans declared as data
(``plan``) and the one sequencer that runs them with a journal (``sequencer``)."""
