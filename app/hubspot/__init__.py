"""HubSpot, outward: the API client (`client`), its typed errors (`errors`), the
deployment-wide rate limiter (`ratelimit`), the property bootstrap (`properties`), every API
path (`paths`) and webhook signatures (`signatures`)."""
