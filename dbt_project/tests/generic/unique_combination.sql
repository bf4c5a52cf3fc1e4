{#- A key of several columns: no combination of their values occurs twice (nulls count as equal;
    test each column not_null as well). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
