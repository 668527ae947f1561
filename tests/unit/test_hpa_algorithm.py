"""The replayed HPA algorithm (testing.hpa) against the documented examples."""

from testing.hpa import Autoscaler, Policy, Rules

UP = Rules(0, (Policy("Pods", 2, 60),))
DOWN = Rules(300, (Policy("Pods", 1, 120),))


def scaler(target: float = 0.6, lo: int = 1, hi: int = 10) -> Autoscaler:
    return Autoscaler(target, lo, hi, UP, DOWN)


def test_proportional_with_tolerance():
    hpa = scaler(target=0.5)
    assert hpa.raw(2, 1.0) == 4  # ceil(2 * 1.0 / 0.5)
    assert hpa.raw(3, 0.54) == 3  # ratio 1.08: within the 10 % tolerance
    assert hpa.raw(3, 0.56) == 4  # ratio 1.12: ceil(3.36)
    assert hpa.raw(4, 0.0) == 0


def test_idle_goes_to_min_replicas_only_after_the_down_window():
    hpa = scaler()
    assert hpa.evaluate(0, 3, 0.6).desired == 3
    assert hpa.evaluate(100, 3, 0.0).desired == 3  # the window still holds a 3
    assert hpa.evaluate(301, 3, 0.0).desired == 2  # then one pod per 120 s
    assert hpa.evaluate(302, 2, 0.0).desired == 2
    assert hpa.evaluate(422, 2, 0.0).desired == 1
    assert hpa.evaluate(600, 1, 0.0).desired == 1  # never below minReplicas


def test_scale_up_is_rate_limited_per_period_and_capped():
    hpa = scaler(hi=5)
    step = hpa.evaluate(0, 1, 6.0)
    assert (step.raw, step.desired) == (10, 3)  # + 2 pods per 60 s
    assert hpa.evaluate(30, 3, 6.0).desired == 3  # the period's 2 pods are spent
    assert hpa.evaluate(61, 3, 6.0).desired == 5  # next period, capped at maxReplicas


def test_percent_policy_and_select_policy():
    both = Rules(0, (Policy("Pods", 1, 60), Policy("Percent", 100, 60)))
    hpa = Autoscaler(0.5, 1, 20, both, DOWN)
    assert hpa.evaluate(0, 4, 5.0).desired == 8  # Max: doubling beats + 1 pod
    stingy = Autoscaler(0.5, 1, 20, Rules(0, both.policies, "Min"), DOWN)
    assert stingy.evaluate(0, 4, 5.0).desired == 5
    frozen = Autoscaler(0.5, 1, 20, Rules(0, both.policies, "Disabled"), DOWN)
    assert frozen.evaluate(0, 4, 5.0).desired == 4


def test_from_spec_scales_durations():
    spec = {
        "spec": {
            "minReplicas": 2,
            "maxReplicas": 6,
            "behavior": {
                "scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
                "scaleDown": {"stabilizationWindowSeconds": 300},
            },
        }
    }
    hpa = Autoscaler.from_spec(spec, target=0.6, time_scale=0.1)
    assert (hpa.min_replicas, hpa.max_replicas) == (2, 6)
    assert hpa.up.policies == (Policy("Pods", 2, 6.0),)
    assert hpa.down.window_s == 30.0
