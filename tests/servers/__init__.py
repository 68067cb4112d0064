"""Real local servers that speak the cloud providers' wire protocols, backed by the embedded
engines, with fault injection: what the cloud engines are tested against."""
