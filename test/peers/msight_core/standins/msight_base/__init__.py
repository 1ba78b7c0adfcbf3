"""Import-only stand-in for msight_base (types of MSight's detection results, which these tests never carry)."""


class DetectionResultBase:
    pass


class RoadUserPoint:
    pass
