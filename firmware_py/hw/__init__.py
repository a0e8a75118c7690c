"""Box hardware through gpiozero: status LEDs, pairing button, ENET activation line, battery
voltage ADC. On a PC it runs on gpiozero's mock pin factory."""
