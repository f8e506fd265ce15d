"""Events as published facts: the envelope that carries them and the bus that delivers them."""
