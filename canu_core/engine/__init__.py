"""Training loops: source pretraining, and (later) SSG / MMT adaptation with the camera adversary they share."""
